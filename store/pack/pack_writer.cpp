#include "store/pack/pack_writer.h"

#include <unistd.h>

#include <algorithm>
#include <unordered_set>

#include "store/base/fd_io.h"
#include "store/meta/snapshot_tables.h"
#include "store/meta/store.h"
#include "store/meta/volume_selection.h"
#include "store/pack/frame_writer.h"
#include "store/pack/pack_format.h"

namespace fbfs {

namespace {

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
                         pack::FrameWriter& frames, Progress& done, const ProgressFn& progress) {
    TRY_ASSIGN(auto fd, open(object.id));
    Sha256 sha;
    std::uint64_t seen = 0;
    auto read =
        read_chunks(fd.get(), std::nullopt, nullptr, [&](std::string_view chunk) -> Result<void> {
            seen += chunk.size();
            if (seen > object.size) {
                return wrong_size(object);  // never more bytes in the stream than the table says
            }
            sha.update(chunk.data(), chunk.size());
            if (auto ok = frames.add(chunk); !ok) {
                return ok;
            }
            done.bytes_done += chunk.size();
            return !progress || progress(done) ? Result<void>() : cancelled();
        });
    TRY(read);
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

// The counts and sizes of a pack of `volumes` holding `objects`, all but its length.
PackSummary summarise(const std::vector<VolumeSnapshot>& volumes,
                      const std::vector<pack::PackedObject>& objects) {
    PackSummary summary;
    summary.volumes = volumes.size();
    summary.objects = objects.size();
    for (const auto& v : volumes) {
        summary.logical_bytes += logical_bytes(v);
    }
    for (const auto& o : objects) {
        summary.object_bytes += o.size;
    }
    return summary;
}

Result<void> write_section(pack::PackOutput& out, pack::SectionKind kind, std::string_view raw,
                           int level) {
    TRY_ASSIGN(auto section, pack::encode_section(kind, raw, level));
    return out.write(section);
}

}  // namespace

Result<PackSummary> write_pack(int fd, const std::vector<VolumeSnapshot>& volumes,
                               const OpenObject& open, const PackOptions& options,
                               const ProgressFn& progress) {
    auto objects = objects_in_order(volumes);
    PackSummary summary = summarise(volumes, objects);
    pack::PackOutput out(fd);
    TRY_ASSIGN(auto frames, pack::FrameWriter::open(out, summary.object_bytes, options));

    pack::Footer footer;
    const std::uint32_t version = pack::version_for(volumes);
    TRY(out.write(pack::encode_header(version)));
    footer.object_table_offset = out.offset();
    TRY(write_section(out, pack::SectionKind::object_table, pack::encode_object_table(objects),
                      options.level));
    footer.metadata_offset = out.offset();
    TRY(write_section(out, pack::SectionKind::metadata,
                      pack::encode_metadata(volumes, objects, version), options.level));
    footer.frames_offset = out.offset();
    Progress done{0, summary.object_bytes, 0, objects.size()};
    for (const auto& object : objects) {
        TRY(copy_object(object, open, frames, done, progress));
    }
    footer.frame_table_offset = out.offset();
    TRY(write_section(out, pack::SectionKind::frame_table,
                      pack::encode_frame_table(frames.frames()), options.level));
    footer.footer_offset = out.offset();
    TRY(out.write(pack::encode_footer(footer)));
    summary.packed_bytes = out.offset();
    return summary;
}

Result<PackSummary> pack_store(Store& store, const std::vector<std::string>& names_in, int fd,
                               const PackOptions& options, const ProgressFn& progress) {
    TRY_ASSIGN(auto names, select_volumes(store, names_in));
    TRY_ASSIGN(auto locks, lock_volumes(store, names,
                                        "unmount it with fbfs umount before packing, so the "
                                        "files open there are in the pack"));
    std::vector<VolumeSnapshot> volumes;
    auto read = store.env().read([&](LmdbTxn& txn) -> Result<void> {
        for (const auto& name : names) {
            TRY_ASSIGN(auto snapshot, read_snapshot(txn, store.tables(), name));
            volumes.push_back(std::move(snapshot));
        }
        return {};
    });
    TRY(read);
    const ObjectPool& pool = store.pool();
    return write_pack(
        fd, volumes, [&](const ObjectId& id) { return pool.open_or_fetch(id); }, options, progress);
}

}  // namespace fbfs
