#include "store/pack/frame_writer.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "store/base/fd_io.h"

namespace fbfs::pack {

namespace {

constexpr int k_window_log = 26;  // 64 MiB: a frame's worth of history for long matches

// The settings every frame of the object stream is compressed with.
Result<void> set_stream_parameters(ZSTD_CCtx* cctx, const PackOptions& options) {
    unsigned threads = options.threads ? options.threads : std::thread::hardware_concurrency();
    TRY(set_parameter(cctx, ZSTD_c_compressionLevel, options.level, "compression level"));
    TRY(set_parameter(cctx, ZSTD_c_enableLongDistanceMatching, 1, "long-distance matching"));
    TRY(set_parameter(cctx, ZSTD_c_windowLog, k_window_log, "window log"));
    TRY(set_parameter(cctx, ZSTD_c_checksumFlag, 1, "frame checksums"));
    if (threads > 1) {
        // A libzstd built without threads (the portable static build) refuses workers: the
        // same frames come from one thread, only slower, so that is no error.
        (void)ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, static_cast<int>(threads));
    }
    return {};
}

}  // namespace

Result<void> PackOutput::write(std::string_view bytes) {
    TRY(write_all(m_fd, bytes, "the pack"));
    m_offset += bytes.size();
    return {};
}

Result<FrameWriter> FrameWriter::open(PackOutput& out, std::uint64_t total,
                                      const PackOptions& options, const ZSTD_customMem& memory) {
    TRY_ASSIGN(auto cctx, make_cctx(memory));
    TRY(set_stream_parameters(cctx.get(), options));
    return FrameWriter(out, total, std::max<std::uint64_t>(options.frame_size, 1), std::move(cctx));
}

FrameWriter::FrameWriter(PackOutput& out, std::uint64_t total, std::uint64_t frame_size, Cctx cctx)
    : m_out(&out),
      m_left_total(total),
      m_frame_size(frame_size),
      m_cctx(std::move(cctx)),
      m_buffer(ZSTD_CStreamOutSize(), '\0') {}

Result<void> FrameWriter::add(std::string_view bytes) {
    while (!bytes.empty()) {
        if (m_frame_left == 0) {
            TRY(start_frame());
        }
        std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), m_frame_left));
        bool last = take == m_frame_left;
        TRY(compress(bytes.substr(0, take), last ? ZSTD_e_end : ZSTD_e_continue));
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

Result<void> FrameWriter::start_frame() {
    m_frame_left = std::min(m_frame_size, m_left_total);
    m_frame = {};
    if (std::size_t rc = ZSTD_CCtx_reset(m_cctx.get(), ZSTD_reset_session_only); ZSTD_isError(rc)) {
        return zstd_error(rc, "the pack's objects");
    }
    if (std::size_t rc = ZSTD_CCtx_setPledgedSrcSize(m_cctx.get(), m_frame_left);
        ZSTD_isError(rc)) {
        return zstd_error(rc, "the pack's objects");
    }
    return {};
}

Result<void> FrameWriter::compress(std::string_view bytes, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
    std::size_t rc = 0;
    do {
        ZSTD_outBuffer out{m_buffer.data(), m_buffer.size(), 0};
        rc = ZSTD_compressStream2(m_cctx.get(), &out, &in, mode);
        if (ZSTD_isError(rc)) {
            return zstd_error(rc, "the pack's objects");
        }
        std::string_view produced(m_buffer.data(), out.pos);
        m_sha.update(produced.data(), produced.size());
        m_frame.stored_size += produced.size();
        TRY(m_out->write(produced));
    } while (mode == ZSTD_e_end ? rc != 0 : in.pos < in.size);
    return {};
}

}  // namespace fbfs::pack
