#include "store/pack/zstd_decoder.h"

#include <zstd_errors.h>

#include <catch2/catch.hpp>
#include <string>

#include "tests/store/zstd_test_memory.h"

using fbfs::pack::make_dctx;
using fbfs::test::ZstdTestMemory;

namespace {

// `raw` as one frame whose header asks for a window of 2^window_log bytes.
std::string frame_with_window(const std::string& raw, int window_log) {
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    REQUIRE(cctx);
    REQUIRE_FALSE(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, window_log)));
    REQUIRE_FALSE(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0)));
    std::string out(ZSTD_compressBound(raw.size()), '\0');
    std::size_t n = ZSTD_compress2(cctx, out.data(), out.size(), raw.data(), raw.size());
    ZSTD_freeCCtx(cctx);
    REQUIRE_FALSE(ZSTD_isError(n));
    out.resize(n);
    return out;
}

// Decompresses `frame` with `dctx` into a buffer of `capacity`; zstd's result code.
std::size_t decompress(ZSTD_DCtx* dctx, const std::string& frame, std::size_t capacity) {
    std::string out(capacity, '\0');
    ZSTD_inBuffer in{frame.data(), frame.size(), 0};
    ZSTD_outBuffer o{out.data(), out.size(), 0};
    return ZSTD_decompressStream(dctx, &o, &in);
}

}  // namespace

TEST_CASE("make_dctx: the decoder refuses frames whose window is over its limit", "[store][zstd]") {
    std::string raw(1 << 20, 'x');
    auto frame = frame_with_window(raw, 20);
    auto wide = make_dctx(20);
    REQUIRE(wide);
    CHECK(decompress(wide->get(), frame, raw.size()) == 0);
    auto narrow = make_dctx(12);
    REQUIRE(narrow);
    std::size_t rc = decompress(narrow->get(), frame, raw.size());
    REQUIRE(ZSTD_isError(rc));
    CHECK(ZSTD_getErrorCode(rc) == ZSTD_error_frameParameter_windowTooLarge);
}

TEST_CASE("make_dctx: a limit zstd refuses and memory it cannot get are Errors, never a decoder",
          "[store][zstd]") {
    auto refused = make_dctx(ZSTD_WINDOWLOG_MAX + 1);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == EINVAL);
    CHECK(refused.error().message.find("zstd refuses") != std::string::npos);

    ZstdTestMemory memory;
    memory.allowed = 0;
    auto none = make_dctx(20, memory.custom());
    REQUIRE_FALSE(none);
    CHECK(none.error().code == ENOMEM);
    CHECK(memory.asked > 0);
}
