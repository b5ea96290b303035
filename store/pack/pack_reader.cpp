#include "store/pack/pack_reader.h"

#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "store/base/thread_safety.h"
#include "store/pack/zstd_decoder.h"

namespace fbfs {

namespace {

using pack::damaged;

constexpr std::size_t k_read_chunk = std::size_t{1} << 20;

// A forward-only reader over an fd with a buffer, counting the bytes consumed. When the fd is a
// regular file its length is known, so a length that runs past the end is caught before reading.
class Input {
public:
    explicit Input(int fd) : m_fd(fd) {
        struct stat st {};
        off_t at = ::lseek(fd, 0, SEEK_CUR);
        if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && at >= 0) {
            m_length = static_cast<std::uint64_t>(st.st_size - at);
        }
    }

    std::uint64_t offset() const { return m_offset; }

    // Whatever is buffered, reading more if nothing is; empty at the end of the input.
    Result<std::string_view> available() {
        if (m_pos == m_size) {
            m_pos = m_size = 0;
            ssize_t n = 0;
            do {
                n = ::read(m_fd, m_buffer.get(), k_read_chunk);
            } while (n < 0 && errno == EINTR);
            if (n < 0) {
                return errno_error("cannot read the pack");
            }
            m_size = static_cast<std::size_t>(n);
        }
        return std::string_view(m_buffer.get() + m_pos, m_size - m_pos);
    }
    void consume(std::size_t n) {
        m_pos += n;
        m_offset += n;
    }

    // Exactly `n` bytes of `what`, or an error saying the pack ends (or would end) first.
    Result<std::string> take(std::uint64_t n, std::string_view what) {
        return take(n, what, false);
    }
    // Up to `n` bytes: fewer only at the end of the input.
    Result<std::string> take_up_to(std::uint64_t n) { return take(n, "", true); }

    std::unexpected<Error> truncated(std::string_view what) const {
        return damaged(
            fmt::format("it is truncated: it ends at byte {}, inside the {}", m_offset, what));
    }

private:
    Result<std::string> take(std::uint64_t n, std::string_view what, bool short_ok) {
        if (!short_ok && m_length && n > *m_length - m_offset) {
            return damaged(
                fmt::format("the {} at byte {} needs {} bytes, but the file ends "
                            "{} bytes later: it is truncated",
                            what, m_offset, n, *m_length - m_offset));
        }
        std::string out;
        while (out.size() < n) {
            TRY_ASSIGN(auto bytes, available());
            if (bytes.empty()) {
                return short_ok ? Result<std::string>(std::move(out)) : truncated(what);
            }
            std::size_t part =
                static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), n - out.size()));
            out.append(bytes.substr(0, part));
            consume(part);
        }
        return out;
    }

    int m_fd;
    std::optional<std::uint64_t> m_length;
    std::uint64_t m_offset = 0;
    std::unique_ptr<char[]> m_buffer{new char[k_read_chunk]};  // not zeroed: read() fills it
    std::size_t m_size = 0;
    std::size_t m_pos = 0;
};

Result<std::string> read_section(Input& in, pack::SectionKind kind) {
    TRY_ASSIGN(auto head, in.take(pack::k_section_header_size, pack::section_name(kind)));
    TRY_ASSIGN(auto header, pack::decode_section_header(head, kind));
    if (header.stored_size > ZSTD_compressBound(header.raw_size)) {
        return damaged(fmt::format("the {} claims {} stored bytes for {} raw bytes",
                                   pack::section_name(kind), header.stored_size, header.raw_size));
    }
    TRY_ASSIGN(auto stored, in.take(header.stored_size, pack::section_name(kind)));
    return pack::open_section(header, head, stored);
}

// Cuts the decompressed object stream into objects, hashing each and passing wanted bytes on.
class ObjectCutter {
public:
    ObjectCutter(const std::vector<pack::PackedObject>& objects, const std::vector<bool>& wanted,
                 PackSink& sink, const ProgressFn& progress)
        : m_objects(objects), m_wanted(wanted), m_sink(sink), m_progress(progress) {
        for (const auto& o : objects) {
            m_done.bytes_total += o.size;
        }
        m_done.objects_total = objects.size();
    }

    std::uint64_t total() const { return m_done.bytes_total; }
    // Whether every object has arrived; false after a stream that ended early.
    bool complete() const { return m_index == m_objects.size(); }

    Result<void> add(std::string_view bytes) {
        while (!bytes.empty()) {
            if (auto ok = finish_empty(); !ok) {
                return ok;
            }
            if (m_index == m_objects.size()) {
                return damaged("its frames hold more bytes than its object table lists");
            }
            const auto& object = m_objects[m_index];
            std::size_t take = static_cast<std::size_t>(
                std::min<std::uint64_t>(bytes.size(), object.size - m_in_object));
            std::string_view part = bytes.substr(0, take);
            m_sha.update(part.data(), part.size());
            if (m_wanted[m_index]) {
                if (auto ok = m_sink.object_bytes(m_index, part); !ok) {
                    return ok;
                }
            }
            bytes.remove_prefix(take);
            m_in_object += take;
            m_done.bytes_done += take;
            if (m_in_object == object.size) {
                if (auto ok = end_object(); !ok) {
                    return ok;
                }
            }
        }
        if (m_progress && !m_progress(m_done)) {
            return cancelled();
        }
        return {};
    }

    // Objects of no bytes need no frame; they end as soon as the stream reaches them.
    Result<void> finish_empty() {
        while (m_index < m_objects.size() && m_objects[m_index].size == 0) {
            if (auto ok = end_object(); !ok) {
                return ok;
            }
        }
        return {};
    }

private:
    Result<void> end_object() {
        if (m_sha.finish() != m_objects[m_index].id) {
            return damaged(
                fmt::format("object {} does not match its id", m_objects[m_index].id.hex()));
        }
        if (m_wanted[m_index]) {
            if (auto ok = m_sink.object_end(m_index); !ok) {
                return ok;
            }
        }
        ++m_index;
        ++m_done.objects_done;
        m_in_object = 0;
        return {};
    }

    const std::vector<pack::PackedObject>& m_objects;
    const std::vector<bool>& m_wanted;
    PackSink& m_sink;
    const ProgressFn& m_progress;
    std::size_t m_index = 0;
    std::uint64_t m_in_object = 0;
    Sha256 m_sha;
    Progress m_done;
};

// Decompressed bytes on their way from one thread to the other: a buffer of ChunkPipe::k_chunk
// bytes, `size` of them used.
struct Chunk {
    std::unique_ptr<char[]> data;
    std::size_t size = 0;
    std::string_view bytes() const { return {data.get(), size}; }
};

// Hands decompressed bytes from the thread that reads and decompresses to the thread that cuts,
// hashes and stores them, so the two halves of unpacking run on two cores. Bounded, and its
// buffers go round rather than being allocated anew, so memory stays small and warm; either
// side can stop the other.
class ChunkPipe {
public:
    static constexpr std::size_t k_chunk = std::size_t{256} << 10;
    static constexpr std::size_t k_depth = 8;

    // An empty buffer: one the consumer gave back, or a new one.
    Chunk empty() {
        LockGuard lock(m_mutex);
        if (m_free.empty()) {
            return Chunk{std::unique_ptr<char[]>(new char[k_chunk]), 0};
        }
        Chunk chunk = std::move(m_free.back());
        m_free.pop_back();
        return chunk;
    }
    // Blocks while the pipe is full. False once the consumer has stopped.
    bool push(Chunk chunk) {
        LockGuard lock(m_mutex);
        m_changed.wait(m_mutex,
                       [&]() REQUIRES(m_mutex) { return m_queue.size() < k_depth || m_stopped; });
        if (m_stopped) {
            return false;
        }
        m_queue.push_back(std::move(chunk));
        m_changed.notify_all();
        return true;
    }
    // The next chunk; nullopt once the producer closed the pipe and everything was taken.
    std::optional<Chunk> pop() {
        LockGuard lock(m_mutex);
        m_changed.wait(m_mutex, [&]() REQUIRES(m_mutex) { return !m_queue.empty() || m_closed; });
        if (m_queue.empty()) {
            return std::nullopt;
        }
        Chunk chunk = std::move(m_queue.front());
        m_queue.pop_front();
        m_changed.notify_all();
        return chunk;
    }
    void give_back(Chunk chunk) {
        LockGuard lock(m_mutex);
        chunk.size = 0;
        m_free.push_back(std::move(chunk));
    }
    void close() {
        LockGuard lock(m_mutex);
        m_closed = true;
        m_changed.notify_all();
    }
    void stop() {
        LockGuard lock(m_mutex);
        m_stopped = true;
        m_changed.notify_all();
    }

private:
    Mutex m_mutex;
    std::condition_variable_any m_changed;
    std::deque<Chunk> m_queue GUARDED_BY(m_mutex);
    std::vector<Chunk> m_free GUARDED_BY(m_mutex);
    bool m_closed GUARDED_BY(m_mutex) = false;
    bool m_stopped GUARDED_BY(m_mutex) = false;
};

// Runs `cutter` over what arrives through `pipe` on its own thread; result() joins it.
class CutterThread {
public:
    CutterThread(ObjectCutter& cutter, ChunkPipe& pipe)
        : m_thread([this, &cutter, &pipe] {
              while (auto chunk = pipe.pop()) {
                  if (m_result) {
                      m_result = cutter.add(chunk->bytes());
                  }
                  pipe.give_back(std::move(*chunk));
                  if (!m_result) {
                      pipe.stop();
                  }
              }
              if (m_result) {
                  m_result = cutter.finish_empty();
              }
          }) {}
    ~CutterThread() {
        if (m_thread.joinable()) {
            m_thread.join();
        }
    }
    Result<void> result() {
        m_thread.join();
        return m_result;
    }

private:
    Result<void> m_result;
    std::thread m_thread;
};

// Decompresses frames until the object stream is complete, recording each frame as it was found.
Result<std::vector<pack::FrameInfo>> read_frames(Input& in, std::uint64_t total, ChunkPipe& pipe) {
    TRY_ASSIGN(auto dctx, pack::make_dctx(pack::k_max_window_log));
    std::vector<pack::FrameInfo> frames;
    std::uint64_t produced = 0;
    Chunk chunk = pipe.empty();
    while (produced < total) {
        pack::FrameInfo frame;
        Sha256 sha;
        ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_only);
        std::size_t rc = 1;
        while (rc != 0) {
            TRY_ASSIGN(auto bytes, in.available());
            if (bytes.empty()) {
                return in.truncated(fmt::format("frame {}", frames.size()));
            }
            ZSTD_inBuffer src{bytes.data(), bytes.size(), 0};
            ZSTD_outBuffer dst{chunk.data.get(), ChunkPipe::k_chunk, chunk.size};
            rc = ZSTD_decompressStream(dctx.get(), &dst, &src);
            if (ZSTD_isError(rc)) {
                return damaged(fmt::format("frame {} does not decompress ({})", frames.size(),
                                           ZSTD_getErrorName(rc)));
            }
            sha.update(bytes.data(), src.pos);
            in.consume(src.pos);
            frame.stored_size += src.pos;
            std::size_t out = dst.pos - chunk.size;
            chunk.size = dst.pos;
            frame.raw_size += out;
            produced += out;
            if (frame.raw_size > pack::k_max_frame_raw || produced > total) {
                return damaged(
                    fmt::format("frame {} holds more bytes than the object table "
                                "lists",
                                frames.size()));
            }
            if (chunk.size == ChunkPipe::k_chunk) {
                if (!pipe.push(std::exchange(chunk, pipe.empty()))) {
                    return cancelled();  // the cutter stopped; its error is the one to report
                }
            }
        }
        if (frame.raw_size == 0) {
            return damaged(fmt::format("frame {} is empty", frames.size()));
        }
        frame.sha256 = sha.finish();
        frames.push_back(frame);
    }
    if (chunk.size > 0 && !pipe.push(std::move(chunk))) {
        return cancelled();
    }
    return frames;
}

Result<void> check_frame_table(const std::vector<pack::FrameInfo>& listed,
                               const std::vector<pack::FrameInfo>& found) {
    if (listed.size() != found.size()) {
        return damaged(fmt::format("its frame table lists {} frames, but it holds {}",
                                   listed.size(), found.size()));
    }
    for (std::size_t i = 0; i < listed.size(); ++i) {
        if (listed[i].raw_size != found[i].raw_size ||
            listed[i].stored_size != found[i].stored_size || listed[i].sha256 != found[i].sha256) {
            return damaged(
                fmt::format("frame {} does not match its checksum in the frame table", i));
        }
    }
    return {};
}

Result<PackContents> read_contents(Input& in, std::uint32_t version, pack::Footer& found) {
    found.object_table_offset = in.offset();
    TRY_ASSIGN(auto table, read_section(in, pack::SectionKind::object_table));
    TRY_ASSIGN(auto objects, pack::decode_object_table(table));
    found.metadata_offset = in.offset();
    TRY_ASSIGN(auto metadata, read_section(in, pack::SectionKind::metadata));
    TRY_ASSIGN(auto volumes, pack::decode_metadata(metadata, objects, version));
    if (auto ok = pack::check_volumes(volumes, objects); !ok) {
        return damaged(ok.error().message);
    }
    return PackContents{std::move(volumes), std::move(objects)};
}

// The header: what is no pack at all is told apart from a pack cut short by its first bytes.
// Returns the pack's format version.
Result<std::uint32_t> read_header(Input& in) {
    TRY_ASSIGN(auto header, in.take_up_to(pack::k_header_size));
    return pack::check_header(header);
}

// Streams the frames through an ObjectCutter on a thread of its own, so every object reaches
// `sink` checked against its id. Returns the frames as they were found.
Result<std::vector<pack::FrameInfo>> read_objects(Input& in, const PackContents& contents,
                                                  const std::vector<bool>& wanted, PackSink& sink,
                                                  const ProgressFn& progress) {
    ObjectCutter cutter(contents.objects, wanted, sink, progress);
    ChunkPipe pipe;
    CutterThread cutting(cutter, pipe);
    auto frames = read_frames(in, cutter.total(), pipe);
    pipe.close();
    auto cut = cutting.result();
    // The reading side's own failure says most; ECANCELED only means the cutting side stopped.
    if (!frames && frames.error().code != ECANCELED) {
        return std::unexpected(frames.error());
    }
    TRY(cut);
    TRY(frames);
    if (!cutter.complete()) {
        return damaged("its frames end before its last object");
    }
    return frames;
}

// The frame table, which must list exactly the frames `found`.
Result<void> read_frame_table(Input& in, const std::vector<pack::FrameInfo>& found) {
    TRY_ASSIGN(auto table, read_section(in, pack::SectionKind::frame_table));
    TRY_ASSIGN(auto listed, pack::decode_frame_table(table));
    return check_frame_table(listed, found);
}

// The footer, whose offsets must be where the parts were `found`, and then the end of the input.
Result<void> read_footer(Input& in, const pack::Footer& found) {
    TRY_ASSIGN(auto tail, in.take(pack::k_footer_size, "footer"));
    TRY_ASSIGN(auto footer, pack::decode_footer(tail));
    if (footer.metadata_offset != found.metadata_offset ||
        footer.frames_offset != found.frames_offset ||
        footer.frame_table_offset != found.frame_table_offset ||
        footer.footer_offset != found.footer_offset ||
        footer.object_table_offset != found.object_table_offset) {
        return damaged("its footer's offsets do not match where its parts are");
    }
    TRY_ASSIGN(auto rest, in.available());
    if (!rest.empty()) {
        return damaged(fmt::format("it has bytes after its footer, at byte {}", in.offset()));
    }
    return {};
}

}  // namespace

Result<ReadSummary> read_pack(int fd, PackSink& sink, const ProgressFn& progress) {
    Input in(fd);
    TRY_ASSIGN(auto version, read_header(in));
    pack::Footer found;
    TRY_ASSIGN(auto contents, read_contents(in, version, found));
    TRY_ASSIGN(auto wanted, sink.begin(contents));
    found.frames_offset = in.offset();
    if (wanted.size() != contents.objects.size()) {
        return make_error(EINVAL, "the pack's reader was asked for objects it does not hold");
    }
    TRY_ASSIGN(auto frames, read_objects(in, contents, wanted, sink, progress));
    found.frame_table_offset = in.offset();
    TRY(read_frame_table(in, frames));
    found.footer_offset = in.offset();
    TRY(read_footer(in, found));
    return ReadSummary{std::move(contents), in.offset()};
}

}  // namespace fbfs
