#include "fs/stamp_book.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "fs/git_index.h"
#include "fs/lower_layer.h"
#include "tests/fs/unit/volume_fixture.h"

namespace fs = std::filesystem;
using fbfs::GitIndex;
using fbfs::LowerLayer;
using fbfs::StampBook;
using fbfs::TimeNs;
using fbfs::test::must;
using fbfs::test::VolumeFixture;
using fbfs::test::write_file;

namespace {

constexpr TimeNs k_second = 1'000'000'000;

// An mtime far from now, so a test never mistakes one for a fresh write: 2001 plus `n` seconds.
TimeNs old_time(int n) {
    return (1'000'000'000 + n) * k_second + 123;
}

void set_mtime(const fs::path& path, TimeNs mtime) {
    struct timespec times[2] = {{0, UTIME_OMIT}, fbfs::to_timespec(mtime)};
    REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

struct Fixture : VolumeFixture {
    LowerLayer lower = must(LowerLayer::open(source));

    // What a fresh mount (a new StampBook over the same volume) shows for `path`.
    TimeNs shown_by_new_mount(const std::string& path) {
        StampBook book(tree, lower, GitIndex());
        return book.shown_mtime(path, must(lower.stat(path)));
    }
};

}  // namespace

TEST_CASE("StampBook: unchanged content shows the mtime recorded by an earlier mount") {
    Fixture f;
    write_file(f.source / "a.c", "int a;\n");
    set_mtime(f.source / "a.c", old_time(1));
    CHECK(f.shown_by_new_mount("a.c") == old_time(1));  // new content: its real mtime

    // Another runner's fresh checkout: the same bytes with a new mtime.
    set_mtime(f.source / "a.c", old_time(2));
    CHECK(f.shown_by_new_mount("a.c") == old_time(1));
}

TEST_CASE("StampBook: changed content shows its real mtime, and that is recorded") {
    Fixture f;
    write_file(f.source / "a.c", "int a;\n");
    set_mtime(f.source / "a.c", old_time(1));
    CHECK(f.shown_by_new_mount("a.c") == old_time(1));

    write_file(f.source / "a.c", "int b;\n");  // same size, other bytes
    set_mtime(f.source / "a.c", old_time(3));
    CHECK(f.shown_by_new_mount("a.c") == old_time(3));
    set_mtime(f.source / "a.c", old_time(4));
    CHECK(f.shown_by_new_mount("a.c") == old_time(3));
    auto stamp = must(f.tree.stamp("a.c"));
    REQUIRE(stamp);
    CHECK(stamp->shown_mtime == old_time(3));
    CHECK(stamp->size == 7);
}

TEST_CASE("StampBook: a directory keeps its mtime while its entry names stay the same") {
    Fixture f;
    fs::create_directory(f.source / "d");
    write_file(f.source / "d" / "x", "x");
    set_mtime(f.source / "d", old_time(1));
    CHECK(f.shown_by_new_mount("d") == old_time(1));

    write_file(f.source / "d" / "x", "changed");  // contents of entries do not count
    set_mtime(f.source / "d", old_time(2));
    CHECK(f.shown_by_new_mount("d") == old_time(1));

    write_file(f.source / "d" / "y", "y");  // a new name does
    set_mtime(f.source / "d", old_time(3));
    CHECK(f.shown_by_new_mount("d") == old_time(3));
}

TEST_CASE("StampBook: a symlink's identity is its target") {
    Fixture f;
    fs::create_symlink("a", f.source / "l");
    set_mtime(f.source / "l", old_time(1));
    CHECK(f.shown_by_new_mount("l") == old_time(1));
    fs::remove(f.source / "l");
    fs::create_symlink("a", f.source / "l");
    set_mtime(f.source / "l", old_time(2));
    CHECK(f.shown_by_new_mount("l") == old_time(1));
    fs::remove(f.source / "l");
    fs::create_symlink("b", f.source / "l");
    set_mtime(f.source / "l", old_time(3));
    CHECK(f.shown_by_new_mount("l") == old_time(3));
}

TEST_CASE("StampBook: a mount reads each file once until its stat changes") {
    Fixture f;
    write_file(f.source / "a.c", "int a;\n");
    set_mtime(f.source / "a.c", old_time(1));
    StampBook book(f.tree, f.lower, GitIndex());
    auto st = must(f.lower.stat("a.c"));
    CHECK(book.shown_mtime("a.c", st) == old_time(1));
    CHECK(book.shown_mtime("a.c", st) == old_time(1));
    CHECK(book.counts().hashed == 1);

    set_mtime(f.source / "a.c", old_time(2));  // a touch: read again, same content
    CHECK(book.shown_mtime("a.c", must(f.lower.stat("a.c"))) == old_time(1));
    CHECK(book.counts().hashed == 2);
}

TEST_CASE("StampBook: git's object store shows real mtimes and records nothing") {
    Fixture f;
    fs::create_directories(f.source / ".git" / "objects" / "ab");
    write_file(f.source / ".git" / "objects" / "ab" / "cdef", "blob");
    set_mtime(f.source / ".git" / "objects" / "ab" / "cdef", old_time(1));
    CHECK(f.shown_by_new_mount(".git/objects/ab/cdef") == old_time(1));
    set_mtime(f.source / ".git" / "objects" / "ab" / "cdef", old_time(2));
    CHECK(f.shown_by_new_mount(".git/objects/ab/cdef") == old_time(2));
    CHECK_FALSE(must(f.tree.stamp(".git/objects/ab/cdef")));
}

TEST_CASE("StampBook: a file that cannot be read shows its real mtime") {
    Fixture f;
    write_file(f.source / "a.c", "int a;\n");
    set_mtime(f.source / "a.c", old_time(1));
    CHECK(f.shown_by_new_mount("a.c") == old_time(1));
    // Its lstat says what it was; the file itself is gone (the source changed meanwhile).
    auto st = must(f.lower.stat("a.c"));
    fs::remove(f.source / "a.c");
    st.st_mtim = fbfs::to_timespec(old_time(5));
    StampBook book(f.tree, f.lower, GitIndex());
    CHECK(book.shown_mtime("a.c", st) == old_time(5));
}
