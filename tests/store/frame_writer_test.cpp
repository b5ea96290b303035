#include "store/pack/frame_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "store/base/unique_fd.h"
#include "tests/store/zstd_test_memory.h"
#include "tests/support/temp_dir.h"

using fbfs::ObjectId;
using fbfs::PackOptions;
using fbfs::UniqueFd;
using fbfs::pack::FrameWriter;
using fbfs::pack::PackOutput;
using fbfs::test::TempDir;
using fbfs::test::ZstdTestMemory;

namespace {

UniqueFd open_output(const std::filesystem::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    REQUIRE(fd);
    return fd;
}

std::string read_all(int fd) {
    std::string out(static_cast<std::size_t>(::lseek(fd, 0, SEEK_END)), '\0');
    REQUIRE(::pread(fd, out.data(), out.size(), 0) == static_cast<ssize_t>(out.size()));
    return out;
}

}  // namespace

TEST_CASE("FrameWriter: the stream comes out in frames of frame_size bytes, each as recorded",
          "[store][zstd]") {
    TempDir tmp;
    UniqueFd fd = open_output(tmp / "frames");
    PackOutput out(fd.get());
    std::string stream = "0123456789";
    PackOptions options;
    options.threads = 1;
    options.frame_size = 4;
    auto frames = FrameWriter::open(out, stream.size(), options);
    REQUIRE(frames);
    REQUIRE(frames->add(stream.substr(0, 3)));
    REQUIRE(frames->add(stream.substr(3)));

    REQUIRE(frames->frames().size() == 3);
    std::string file = read_all(fd.get());
    CHECK(out.offset() == file.size());
    std::size_t stored_at = 0;
    std::size_t raw_at = 0;
    for (const auto& frame : frames->frames()) {
        std::string_view stored(file.data() + stored_at, frame.stored_size);
        CHECK(frame.sha256 == ObjectId::of(stored));
        std::string raw(frame.raw_size, '\0');
        CHECK(ZSTD_decompress(raw.data(), raw.size(), stored.data(), stored.size()) ==
              frame.raw_size);
        CHECK(raw == stream.substr(raw_at, frame.raw_size));
        stored_at += frame.stored_size;
        raw_at += frame.raw_size;
    }
    CHECK(raw_at == stream.size());
    CHECK(stored_at == file.size());
}

TEST_CASE("FrameWriter: an encoder zstd cannot allocate is an ENOMEM Error, and nothing is written",
          "[store][zstd]") {
    TempDir tmp;
    UniqueFd fd = open_output(tmp / "frames");
    PackOutput out(fd.get());
    ZstdTestMemory memory{0};
    auto frames = FrameWriter::open(out, 10, PackOptions{}, memory.custom());
    REQUIRE_FALSE(frames);
    CHECK(frames.error().code == ENOMEM);
    CHECK_THAT(frames.error().message, Catch::Contains("zstd"));
    CHECK(memory.asked == 1);
    CHECK(out.offset() == 0);
    CHECK(read_all(fd.get()).empty());
}
