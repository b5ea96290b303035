// The pack writer's output and its object stream (format in pack_format.h).
//
// PackOutput writes to an fd and counts what it wrote, so the writer knows each part's offset
// without seeking. FrameWriter compresses the object stream into zstd frames of at most
// `frame_size` raw bytes, with long-distance matching and zstd's worker threads, writing each
// frame's bytes as zstd produces them and recording its sizes and digest for the frame table.
// Neither is thread-safe; one pack is written by one thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/pack/pack_format.h"
#include "store/pack/pack_writer.h"
#include "store/pack/zstd_encoder.h"

namespace fbfs::pack {

class PackOutput {
public:
    explicit PackOutput(int fd) : m_fd(fd) {}

    // Writes all of `bytes`; an Error naming the pack if the fd takes them not.
    Result<void> write(std::string_view bytes);
    std::uint64_t offset() const { return m_offset; }

private:
    int m_fd;
    std::uint64_t m_offset = 0;
};

class FrameWriter {
public:
    // A writer of `total` bytes of object stream to `out`, which must outlive it. ENOMEM if zstd
    // cannot allocate its context, EINVAL if it refuses a setting; nothing is written then.
    static Result<FrameWriter> open(PackOutput& out, std::uint64_t total,
                                    const PackOptions& options,
                                    const ZSTD_customMem& memory = ZSTD_defaultCMem);

    // The next bytes of the stream. Fails on a zstd or write error.
    Result<void> add(std::string_view bytes);
    // Every frame finished so far; all of them once `total` bytes were added.
    const std::vector<FrameInfo>& frames() const { return m_frames; }

private:
    FrameWriter(PackOutput& out, std::uint64_t total, std::uint64_t frame_size, Cctx cctx);
    Result<void> start_frame();
    Result<void> compress(std::string_view bytes, ZSTD_EndDirective mode);

    PackOutput* m_out;
    std::uint64_t m_left_total;
    std::uint64_t m_frame_size;
    std::uint64_t m_frame_left = 0;
    Cctx m_cctx;
    std::string m_buffer;
    Sha256 m_sha;
    FrameInfo m_frame;
    std::vector<FrameInfo> m_frames;
};

}  // namespace fbfs::pack
