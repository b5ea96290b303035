#include "store/pack/zstd_encoder.h"

#include <catch2/catch.hpp>
#include <string>

#include "tests/store/zstd_test_memory.h"

using fbfs::pack::compress_frame;
using fbfs::pack::make_cctx;
using fbfs::test::ZstdTestMemory;

namespace {

std::string decompressed(const std::string& frame, std::size_t size) {
    std::string out(size, '\0');
    std::size_t n = ZSTD_decompress(out.data(), out.size(), frame.data(), frame.size());
    REQUIRE_FALSE(ZSTD_isError(n));
    out.resize(n);
    return out;
}

}  // namespace

TEST_CASE("compress_frame: the frame decompresses to the bytes, with zstd's memory as given",
          "[store][zstd]") {
    std::string raw(100'000, 'x');
    raw += "and something else";
    ZstdTestMemory memory;
    auto frame = compress_frame(raw, 3, "the test's bytes", memory.custom());
    REQUIRE(frame);
    CHECK(frame->size() < raw.size());
    CHECK(decompressed(*frame, raw.size()) == raw);
    CHECK(memory.asked > 0);
}

TEST_CASE("compress_frame: zstd that cannot allocate is an ENOMEM Error, never an empty frame",
          "[store][zstd]") {
    std::string raw(100'000, 'x');
    // 0: no encoder at all; 1: an encoder, but no room to work in.
    for (int allowed : {0, 1}) {
        ZstdTestMemory memory{allowed};
        auto frame = compress_frame(raw, 3, "the test's bytes", memory.custom());
        INFO("allowed " << allowed << ", asked " << memory.asked);
        REQUIRE_FALSE(frame);
        CHECK(frame.error().code == ENOMEM);
        CHECK(memory.asked > allowed);
        if (allowed == 1) {
            CHECK_THAT(frame.error().message, Catch::Contains("cannot compress the test's bytes"));
        }
    }
}

TEST_CASE("make_cctx: a context zstd cannot allocate is an ENOMEM Error", "[store][zstd]") {
    ZstdTestMemory memory{0};
    auto cctx = make_cctx(memory.custom());
    REQUIRE_FALSE(cctx);
    CHECK(cctx.error().code == ENOMEM);
    CHECK(memory.asked == 1);
}
