// Replays the pack reader's fuzz corpus (tests/fuzz/corpus/) under the normal build: what the
// fuzz target (tests/fuzz/pack_reader_fuzz.cpp) found once stays found without clang.
//   valid-*.pack   read_pack accepts it, and hands every object over whole
//   broken-*.pack  read_pack refuses it, saying the pack is damaged or is no pack
//   anything else  (inputs kept from a fuzz run) read_pack must not crash, either way
// tests/fuzz/make_corpus.cpp writes the valid and broken seeds.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "store/base/unique_fd.h"
#include "store/pack/pack_reader.h"

namespace fs = std::filesystem;
using fbfs::PackContents;
using fbfs::Result;

namespace {

const fs::path k_corpus = fs::path(FBFS_SOURCE_DIR) / "tests/fuzz/corpus";

// Takes every object and throws its bytes away, noting the first time they do not come whole
// and in order. (read_pack calls the object methods from a thread of its own, where a failed
// REQUIRE cannot throw, so the test checks `broken` afterwards.)
class DiscardSink : public fbfs::PackSink {
public:
    Result<std::vector<bool>> begin(const PackContents& contents) override {
        note(begun, "begin() called twice");
        begun = true;
        for (const auto& o : contents.objects) {
            sizes.push_back(o.size);
        }
        volumes = contents.volumes.size();
        for (const auto& v : contents.volumes) {
            xattrs += v.xattrs.size();
        }
        return std::vector<bool>(sizes.size(), true);
    }
    Result<void> object_bytes(std::size_t index, std::string_view bytes) override {
        note(index != ended || index >= sizes.size(), "bytes of an object out of order");
        got += bytes.size();
        note(index < sizes.size() && got > sizes[index], "more bytes than the object's size");
        return {};
    }
    Result<void> object_end(std::size_t index) override {
        note(index != ended || index >= sizes.size(), "the end of an object out of order");
        note(index < sizes.size() && got != sizes[index], "an object's end before its bytes");
        ++ended;
        got = 0;
        return {};
    }

    bool begun = false;
    std::size_t volumes = 0;
    std::size_t xattrs = 0;
    std::vector<std::uint64_t> sizes;
    std::size_t ended = 0;
    std::uint64_t got = 0;
    std::string broken;  // the first broken promise, if any

private:
    void note(bool wrong, const char* what) {
        if (wrong && broken.empty()) {
            broken = fmt::format("{} (object {})", what, ended);
        }
    }
};

struct Replay {
    Result<fbfs::ReadSummary> read;
    DiscardSink sink;
};

Replay replay(const fs::path& path) {
    fbfs::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(fd);
    Replay r;
    r.read = fbfs::read_pack(fd.get(), r.sink, {});
    return r;
}

bool starts_with(const fs::path& path, std::string_view prefix) {
    return path.filename().string().starts_with(prefix);
}

std::vector<fs::path> corpus(std::string_view prefix = "") {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(k_corpus)) {
        if (entry.is_regular_file() && starts_with(entry.path(), prefix)) {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

void require_clean_refusal(const fs::path& path, const Replay& r) {
    INFO(path.filename().string());
    CHECK(r.sink.broken == "");
    REQUIRE_FALSE(r.read);
    const std::string& message = r.read.error().message;
    INFO(message);
    CHECK((message.starts_with("the pack is damaged") || message.starts_with("not an fbfs pack")));
}

}  // namespace

TEST_CASE("pack corpus: the valid seeds are read whole") {
    auto files = corpus("valid-");
    REQUIRE(files.size() >= 5);
    for (const auto& path : files) {
        INFO(path.filename().string());
        CHECK(fs::file_size(path) < 8192);
        Replay r = replay(path);
        INFO((r.read ? std::string() : r.read.error().message));
        REQUIRE(r.read);
        CHECK(r.sink.broken == "");
        CHECK(r.read->packed_bytes == fs::file_size(path));
        CHECK(r.sink.begun);
        CHECK(r.sink.ended == r.sink.sizes.size());
    }
}

TEST_CASE("pack corpus: the seeds hold what their names say") {
    CHECK(replay(k_corpus / "valid-empty-store.pack").sink.volumes == 0);
    CHECK(replay(k_corpus / "valid-two-volumes.pack").sink.volumes == 2);
    Replay files = replay(k_corpus / "valid-files.pack");
    CHECK(files.sink.volumes == 1);
    CHECK(files.sink.sizes.size() == 3);  // main.c (twice linked), util.h, Makefile
    CHECK(files.sink.xattrs == 4);
    Replay v1 = replay(k_corpus / "valid-v1-files.pack");  // format 1: no attributes
    CHECK(v1.sink.volumes == 1);
    CHECK(v1.sink.sizes.size() == 3);
    CHECK(v1.sink.xattrs == 0);
}

TEST_CASE("pack corpus: the broken seeds are refused as damaged") {
    auto files = corpus("broken-");
    REQUIRE(files.size() >= 10);
    for (const auto& path : files) {
        CHECK(fs::file_size(path) < 8192);
        require_clean_refusal(path, replay(path));
    }
}

TEST_CASE("pack corpus: any other input is read without a crash") {
    for (const auto& path : corpus()) {
        if (starts_with(path, "valid-") || starts_with(path, "broken-")) {
            continue;
        }
        INFO(path.filename().string());
        Replay r = replay(path);
        CHECK(r.sink.broken == "");
        if (r.read) {
            CHECK(r.read->packed_bytes == fs::file_size(path));
            CHECK(r.sink.ended == r.sink.sizes.size());
        } else {
            CHECK_FALSE(r.read.error().message.empty());
        }
    }
}
