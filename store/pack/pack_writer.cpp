#include "store/pack/pack_writer.h"

#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <unordered_set>

#include "store/base/fd_io.h"
#include "store/meta/snapshot_tables.h"
#include "store/meta/store.h"
#include "store/meta/volume_lock.h"
#include "store/pack/pack_format.h"

namespace fbfs {

namespace {

constexpr int k_window_log = 26;  // 64 MiB: a frame's worth of history for long matches
constexpr std::size_t k_zero_chunk = std::size_t{1} << 20;

// A write-only stream over an fd that counts what it wrote.
class Output {
public:
    explicit Output(int fd) : m_fd(fd) {}

    Result<void> write(std::string_view bytes) {
        auto ok = write_all(m_fd, bytes, "the pack");
        m_offset += ok ? bytes.size() : 0;
        return ok;
    }
    std::uint64_t offset() const { return m_offset; }

private:
    int m_fd;
    std::uint64_t m_offset = 0;
};

struct CctxFree {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

// Compresses the object stream into frames of at most `frame_size` bytes, writing each frame's
// bytes as zstd produces them and recording its sizes and digest.
class FrameWriter {
public:
    FrameWriter(Output& out, std::uint64_t total, const PackOptions& options)
        : m_out(out),
          m_left_total(total),
          m_frame_size(std::max<std::uint64_t>(options.frame_size, 1)),
          m_buffer(ZSTD_CStreamOutSize(), '\0') {
        m_cctx.reset(ZSTD_createCCtx());
        unsigned threads = options.threads ? options.threads : std::thread::hardware_concurrency();
        ZSTD_CCtx_setParameter(m_cctx.get(), ZSTD_c_compressionLevel, options.level);
        ZSTD_CCtx_setParameter(m_cctx.get(), ZSTD_c_enableLongDistanceMatching, 1);
        ZSTD_CCtx_setParameter(m_cctx.get(), ZSTD_c_windowLog, k_window_log);
        ZSTD_CCtx_setParameter(m_cctx.get(), ZSTD_c_checksumFlag, 1);
        if (threads > 1) {
            ZSTD_CCtx_setParameter(m_cctx.get(), ZSTD_c_nbWorkers, static_cast<int>(threads));
        }
    }

    Result<void> add(std::string_view bytes) {
        if (!m_cctx) {
            return make_error(ENOMEM, "cannot allocate a zstd encoder");
        }
        while (!bytes.empty()) {
            if (m_frame_left == 0) {
                m_frame_left = std::min(m_frame_size, m_left_total);
                m_frame = {};
                ZSTD_CCtx_reset(m_cctx.get(), ZSTD_reset_session_only);
                ZSTD_CCtx_setPledgedSrcSize(m_cctx.get(), m_frame_left);
            }
            std::size_t take =
                static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), m_frame_left));
            bool last = take == m_frame_left;
            if (auto ok = compress(bytes.substr(0, take), last ? ZSTD_e_end : ZSTD_e_continue);
                !ok) {
                return ok;
            }
            bytes.remove_prefix(take);
            m_frame_left -= take;
            m_left_total -= take;
            m_frame.raw_size += take;
            if (last) {
                m_frame.sha256 = m_sha.finish();
                m_frames.push_back(m_frame);
            }
        }
        return {};
    }

    // add() for the object stream as it is read: a run of zeros (a sparse file's holes) waits
    // until other bytes or finish() come, and every whole frame of it is written as one zstd
    // frame of zeros made once, instead of running the long-distance matcher over it.
    Result<void> append(std::string_view bytes) {
        if (!bytes.empty() && bytes.front() == '\0' &&
            std::memcmp(bytes.data(), bytes.data() + 1, bytes.size() - 1) == 0) {
            m_zeros += bytes.size();
            return {};
        }
        TRY(flush_zeros());
        return add(bytes);
    }
    // Writes what append() holds back; call once after the last byte.
    Result<void> finish() { return flush_zeros(); }

    const std::vector<pack::FrameInfo>& frames() const { return m_frames; }

private:
    Result<void> flush_zeros() {
        if (m_zeros > 0 && m_zero_buffer.empty()) {
            m_zero_buffer.assign(k_zero_chunk, '\0');
        }
        while (m_zeros > 0) {
            std::uint64_t whole = std::min(m_frame_size, m_left_total);
            if (m_frame_left == 0 && m_zeros >= whole) {
                TRY(add_zero_frame(whole));
                m_zeros -= whole;
                continue;
            }
            std::uint64_t take = std::min<std::uint64_t>(m_zeros, k_zero_chunk);
            take = m_frame_left > 0 ? std::min(take, m_frame_left) : take;
            TRY(add(std::string_view(m_zero_buffer).substr(0, take)));
            m_zeros -= take;
        }
        return {};
    }

    // Writes a frame of `size` zeros, compressed (once per size) by a plain context at level 1:
    // zstd makes a few bytes per block of them either way, and this way costs no time.
    Result<void> add_zero_frame(std::uint64_t size) {
        auto& stored = m_zero_frames[size];
        if (stored.empty()) {
            TRY_ASSIGN(stored, compress_zeros(size));
        }
        TRY(m_out.write(stored));
        Sha256 sha;
        sha.update(stored.data(), stored.size());
        m_frames.push_back({size, stored.size(), sha.finish()});
        m_left_total -= size;
        return {};
    }

    Result<std::string> compress_zeros(std::uint64_t size) const {
        std::unique_ptr<ZSTD_CCtx, CctxFree> cctx(ZSTD_createCCtx());
        if (!cctx) {
            return make_error(ENOMEM, "cannot allocate a zstd encoder");
        }
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, 1);
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_windowLog, k_window_log);
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
        ZSTD_CCtx_setPledgedSrcSize(cctx.get(), size);
        std::string stored;
        std::string buffer(ZSTD_CStreamOutSize(), '\0');
        std::uint64_t left = size;
        std::size_t rc = 0;
        do {
            auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left, k_zero_chunk));
            ZSTD_inBuffer in{m_zero_buffer.data(), take, 0};
            ZSTD_EndDirective mode = take == left ? ZSTD_e_end : ZSTD_e_continue;
            do {
                ZSTD_outBuffer out{buffer.data(), buffer.size(), 0};
                rc = ZSTD_compressStream2(cctx.get(), &out, &in, mode);
                if (ZSTD_isError(rc)) {
                    return make_error(EIO, fmt::format("zstd failed: {}", ZSTD_getErrorName(rc)));
                }
                stored.append(buffer.data(), out.pos);
            } while (mode == ZSTD_e_end ? rc != 0 : in.pos < in.size);
            left -= take;
        } while (left > 0);
        return stored;
    }

    Result<void> compress(std::string_view bytes, ZSTD_EndDirective mode) {
        ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
        std::size_t rc = 0;
        do {
            ZSTD_outBuffer out{m_buffer.data(), m_buffer.size(), 0};
            rc = ZSTD_compressStream2(m_cctx.get(), &out, &in, mode);
            if (ZSTD_isError(rc)) {
                return make_error(EIO, fmt::format("zstd failed: {}", ZSTD_getErrorName(rc)));
            }
            std::string_view produced(m_buffer.data(), out.pos);
            m_sha.update(produced.data(), produced.size());
            m_frame.stored_size += produced.size();
            if (auto ok = m_out.write(produced); !ok) {
                return ok;
            }
        } while (mode == ZSTD_e_end ? rc != 0 : in.pos < in.size);
        return {};
    }

    Output& m_out;
    std::uint64_t m_left_total;
    std::uint64_t m_frame_size;
    std::uint64_t m_frame_left = 0;
    std::unique_ptr<ZSTD_CCtx, CctxFree> m_cctx;
    std::string m_buffer;
    Sha256 m_sha;
    pack::FrameInfo m_frame;
    std::vector<pack::FrameInfo> m_frames;
    std::uint64_t m_zeros = 0;                           // held back by append()
    std::string m_zero_buffer;                           // k_zero_chunk zeros, once needed
    std::map<std::uint64_t, std::string> m_zero_frames;  // by raw size
};

// The objects the volumes name, each once, in the order a walk of each tree meets them, so that
// files from the same directory sit next to each other in the stream (as in a tar).
std::vector<pack::PackedObject> objects_in_order(const std::vector<VolumeSnapshot>& volumes) {
    std::vector<pack::PackedObject> objects;
    std::unordered_set<ObjectId> seen;
    auto add = [&](const InodeRecord& record) {
        if (record.object && seen.insert(*record.object).second) {
            objects.push_back({*record.object, record.size});
        }
    };
    for (const auto& v : volumes) {
        std::vector<InodeNumber> todo{k_root_inode};
        std::unordered_set<InodeNumber> walked;  // a damaged store's loop is walked once
        while (!todo.empty()) {
            InodeNumber dir = todo.back();
            todo.pop_back();
            if (!walked.insert(dir).second) {
                continue;
            }
            auto first = std::lower_bound(
                v.entries.begin(), v.entries.end(), dir,
                [](const SnapshotEntry& e, InodeNumber parent) { return e.parent < parent; });
            std::vector<InodeNumber> subdirs;
            for (auto it = first; it != v.entries.end() && it->parent == dir; ++it) {
                auto child = v.inodes.find(it->value.ino);
                if (it->value.is_whiteout() || child == v.inodes.end()) {
                    continue;
                }
                if (child->second.is_dir()) {
                    subdirs.push_back(it->value.ino);
                }
                add(child->second);
            }
            todo.insert(todo.end(), subdirs.rbegin(), subdirs.rend());
        }
        for (const auto& [ino, record] : v.inodes) {
            add(record);  // none left in a consistent tree; a cheap guarantee all are packed
        }
    }
    return objects;
}

std::unexpected<Error> wrong_size(const pack::PackedObject& object) {
    return make_error(EIO, fmt::format("object {} in the store does not have its {} bytes (run "
                                       "fbfs verify)",
                                       object.id.hex(), object.size));
}

// Streams one object's bytes into the frames, checking them against its id on the way.
Result<void> copy_object(const pack::PackedObject& object, const OpenObject& open,
                         FrameWriter& frames, Progress& done, const ProgressFn& progress) {
    auto fd = open(object.id);
    if (!fd) {
        return std::unexpected(fd.error());
    }
    Sha256 sha;
    std::uint64_t seen = 0;
    // With pread from 0, holes come as zeros without being read.
    auto read =
        read_chunks(fd->get(), off_t{0}, nullptr, [&](std::string_view chunk) -> Result<void> {
            seen += chunk.size();
            if (seen > object.size) {
                return wrong_size(object);  // never more bytes in the stream than the table says
            }
            sha.update(chunk.data(), chunk.size());
            if (auto ok = frames.append(chunk); !ok) {
                return ok;
            }
            done.bytes_done += chunk.size();
            return !progress || progress(done) ? Result<void>() : cancelled();
        });
    if (!read) {
        return std::unexpected(read.error());
    }
    if (seen != object.size) {
        return wrong_size(object);
    }
    if (sha.finish() != object.id) {
        return make_error(EIO, fmt::format("object {} in the store does not match its id (run "
                                           "fbfs verify)",
                                           object.id.hex()));
    }
    ++done.objects_done;
    return {};
}

}  // namespace

Result<PackSummary> write_pack(int fd, const std::vector<VolumeSnapshot>& volumes,
                               const OpenObject& open, const PackOptions& options,
                               const ProgressFn& progress) {
    auto objects = objects_in_order(volumes);
    PackSummary summary;
    summary.volumes = volumes.size();
    summary.objects = objects.size();
    for (const auto& v : volumes) {
        summary.logical_bytes += logical_bytes(v);
    }
    for (const auto& o : objects) {
        summary.object_bytes += o.size;
    }

    Output out(fd);
    pack::Footer footer;
    auto ok = out.write(pack::encode_header());
    footer.object_table_offset = out.offset();
    if (ok) {
        ok = out.write(pack::encode_section(pack::SectionKind::object_table,
                                            pack::encode_object_table(objects), options.level));
    }
    footer.metadata_offset = out.offset();
    if (ok) {
        ok = out.write(pack::encode_section(
            pack::SectionKind::metadata, pack::encode_metadata(volumes, objects), options.level));
    }
    if (!ok) {
        return std::unexpected(ok.error());
    }
    footer.frames_offset = out.offset();
    FrameWriter frames(out, summary.object_bytes, options);
    Progress done{0, summary.object_bytes, 0, objects.size()};
    for (const auto& object : objects) {
        if (auto copied = copy_object(object, open, frames, done, progress); !copied) {
            return std::unexpected(copied.error());
        }
    }
    TRY(frames.finish());
    footer.frame_table_offset = out.offset();
    ok = out.write(pack::encode_section(pack::SectionKind::frame_table,
                                        pack::encode_frame_table(frames.frames()), options.level));
    footer.footer_offset = out.offset();
    if (ok) {
        ok = out.write(pack::encode_footer(footer));
    }
    if (!ok) {
        return std::unexpected(ok.error());
    }
    summary.packed_bytes = out.offset();
    return summary;
}

Result<PackSummary> pack_store(Store& store, const std::vector<std::string>& names_in, int fd,
                               const PackOptions& options, const ProgressFn& progress) {
    auto all = store.volumes();
    if (!all) {
        return std::unexpected(all.error());
    }
    std::vector<std::string> names = names_in;
    std::string known;
    for (const auto& v : *all) {
        known += (known.empty() ? "" : ", ") + v.name;
        if (names_in.empty()) {
            names.push_back(v.name);
        }
    }
    for (const auto& name : names) {
        auto found =
            std::find_if(all->begin(), all->end(), [&](auto& v) { return v.name == name; });
        if (found == all->end()) {
            return make_error(
                ENOENT, fmt::format("the store {} has no volume '{}' (it has: {})",
                                    store.root().string(), name, known.empty() ? "none" : known));
        }
    }
    std::vector<VolumeLock> locks;
    for (const auto& name : names) {
        auto lock = VolumeLock::acquire(store.root(), name);
        if (!lock && lock.error().code == EBUSY) {
            return std::unexpected(VolumeLock::busy(
                store.root(), name, VolumeLock::holder(store.root(), name).value_or(0),
                "unmount it with fbfs umount before packing, so the files open there are in the "
                "pack"));
        }
        if (!lock) {
            return std::unexpected(lock.error());
        }
        locks.push_back(std::move(*lock));
    }
    std::vector<VolumeSnapshot> volumes;
    auto read = store.env().read([&](LmdbTxn& txn) -> Result<void> {
        for (const auto& name : names) {
            auto snapshot = read_snapshot(txn, store.tables(), name);
            if (!snapshot) {
                return std::unexpected(snapshot.error());
            }
            volumes.push_back(std::move(*snapshot));
        }
        return {};
    });
    if (!read) {
        return std::unexpected(read.error());
    }
    const ObjectPool& pool = store.pool();
    return write_pack(
        fd, volumes, [&](const ObjectId& id) { return pool.open_object(id); }, options, progress);
}

}  // namespace fbfs
