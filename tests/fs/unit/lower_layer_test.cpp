#include "fs/lower_layer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/must.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::LowerLayer;
using fbfs::test::must;
using fbfs::test::TempDir;
using fbfs::test::write_file;

namespace {

// A source tree: a.c, src/b.c, src/sub/, link -> a.c.
struct Source {
    TempDir tmp;
    fs::path root = make();
    LowerLayer lower = must(LowerLayer::open(root));

    fs::path make() {
        fs::path r = tmp / "source";
        fs::create_directories(r / "src" / "sub");
        write_file(r / "a.c", "int a;\n");
        write_file(r / "src" / "b.c", "int b;\n");
        fs::create_symlink("a.c", r / "link");
        return r;
    }
};

std::vector<std::string> names(const std::vector<fbfs::LowerEntry>& entries) {
    std::vector<std::string> out;
    for (const auto& e : entries) {
        out.push_back(e.name);
    }
    return out;
}

}  // namespace

TEST_CASE("LowerLayer: a source that is missing or not a directory is refused by name") {
    TempDir tmp;
    auto missing = LowerLayer::open(tmp / "nowhere");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == ENOENT);
    CHECK_THAT(missing.error().message,
               Catch::Contains((tmp / "nowhere").string()) && Catch::Contains("--source"));

    write_file(tmp / "file", "x");
    auto file = LowerLayer::open(tmp / "file");
    REQUIRE_FALSE(file);
    CHECK(file.error().code == ENOTDIR);
    CHECK_THAT(file.error().message, Catch::Contains((tmp / "file").string()));
}

TEST_CASE("LowerLayer: paths are relative to the source root and symlinks are not followed") {
    Source s;
    CHECK(S_ISDIR(must(s.lower.stat("")).st_mode));
    CHECK(S_ISREG(must(s.lower.stat("src/b.c")).st_mode));
    CHECK(S_ISLNK(must(s.lower.stat("link")).st_mode));
    CHECK(must(s.lower.readlink("link")) == "a.c");
    CHECK(s.lower.exists("a.c"));
    CHECK_FALSE(s.lower.exists("b.c"));

    auto fd = must(s.lower.open_file("src/b.c"));
    char buf[16] = {};
    CHECK(::read(fd.get(), buf, sizeof buf) == 7);
    CHECK(std::string(buf) == "int b;\n");

    // A symlink is never opened through: its target might lead out of the source.
    auto through = s.lower.open_file("link");
    REQUIRE_FALSE(through);
    CHECK(through.error().code == ELOOP);
}

TEST_CASE("LowerLayer: a missing path fails with the errno of the call and names the path") {
    Source s;
    auto st = s.lower.stat("src/none.c");
    REQUIRE_FALSE(st);
    CHECK(st.error().code == ENOENT);
    CHECK_THAT(st.error().message, Catch::Contains("src/none.c"));

    auto below_file = s.lower.stat("a.c/x");
    REQUIRE_FALSE(below_file);
    CHECK(below_file.error().code == ENOTDIR);

    auto opened = s.lower.open_file("none");
    REQUIRE_FALSE(opened);
    CHECK(opened.error().code == ENOENT);

    auto link = s.lower.readlink("a.c");
    REQUIRE_FALSE(link);
    CHECK(link.error().code == EINVAL);
}

TEST_CASE("LowerLayer: a listing holds every entry but . and .., in name order, with types") {
    Source s;
    auto root = must(s.lower.list(""));
    CHECK(names(root) == std::vector<std::string>{"a.c", "link", "src"});
    CHECK(root[0].type == DT_REG);
    CHECK(root[1].type == DT_LNK);
    CHECK(root[2].type == DT_DIR);
    CHECK(names(must(s.lower.list("src"))) == std::vector<std::string>{"b.c", "sub"});
    CHECK(must(s.lower.list("src/sub")).empty());
}

TEST_CASE("LowerLayer: listing what is not a readable directory fails with that call's errno") {
    Source s;
    auto missing = s.lower.list("none");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == ENOENT);
    CHECK_THAT(missing.error().message, Catch::Contains("none"));

    auto file = s.lower.list("a.c");
    REQUIRE_FALSE(file);
    CHECK(file.error().code == ENOTDIR);
}

TEST_CASE("LowerLayer: the source's root fd keeps serving after the source path moves") {
    Source s;
    fs::rename(s.root, s.tmp / "moved");
    CHECK(must(s.lower.stat("a.c")).st_size == 7);
    // proc_path names the same files through the root fd, for calls that take only a path.
    struct stat st {};
    CHECK(::lstat(s.lower.proc_path("src/b.c").c_str(), &st) == 0);
    CHECK(st.st_size == 7);
    CHECK(::lstat(s.lower.proc_path("").c_str(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
}

TEST_CASE("LowerLayer: relative paths are joined and split at their last slash") {
    CHECK(fbfs::join_path("", "a") == "a");
    CHECK(fbfs::join_path("src/x", "a") == "src/x/a");
    CHECK(fbfs::parent_of("a") == "");
    CHECK(fbfs::parent_of("src/x/a") == "src/x");
    CHECK(fbfs::base_of("a") == "a");
    CHECK(fbfs::base_of("src/x/a") == "a");
}
