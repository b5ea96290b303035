// File operations through a real fbfs mount, made with the POSIX calls programs use, asserting
// what those programs rely on: data, sizes, errno values, link counts, modes and exact times,
// and that everything survives an unmount.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fs/process.h"
#include "store/base/object_id.h"
#include "store/base/unique_fd.h"
#include "tests/support/mount.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tree.h"
#include "tests/support/umask.h"

namespace fs = std::filesystem;
using fbfs::ObjectId;
using fbfs::UniqueFd;
using fbfs::test::at;
using fbfs::test::check_same_tree;
using fbfs::test::lstat_of;
using fbfs::test::Mount;
using fbfs::test::MountedStore;
using fbfs::test::names_in;
using fbfs::test::object_path;
using fbfs::test::open_fd;
using fbfs::test::open_outcome;
using fbfs::test::outcome;
using fbfs::test::permissions;
using fbfs::test::pread_all;
using fbfs::test::put_file;
using fbfs::test::pwrite_all;
using fbfs::test::random_bytes;
using fbfs::test::read_path;
using fbfs::test::readdir_counts;
using fbfs::test::readlink_of;
using fbfs::test::rename2;
using fbfs::test::seconds;
using fbfs::test::seconds_now;
using fbfs::test::set_times;
using fbfs::test::snapshot;
using fbfs::test::stat_of;
using fbfs::test::stat_outcome;
using fbfs::test::sys_error;
using fbfs::test::time_text;
using fbfs::test::write_all;

namespace {

struct stat fstat_of(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        throw sys_error("fstat");
    }
    return st;
}

std::vector<fs::path> object_files(const fs::path& store) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::recursive_directory_iterator(store / "objects")) {
        if (entry.is_regular_file()) {
            files.push_back(entry.path());
        }
    }
    return files;
}

std::map<std::string, ino_t> inode_numbers(const fs::path& root) {
    std::map<std::string, ino_t> out;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        out[entry.path().lexically_relative(root).string()] = lstat_of(entry.path()).st_ino;
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Regular files: create, write, read, truncate.

TEST_CASE("Mount: a file written through the mount reads back with its size", "[fuse]") {
    MountedStore m;
    const std::string content = "hello, fbfs\n" + random_bytes(1, 100000);

    auto fd = open_fd(m / "a.txt", O_WRONLY | O_CREAT | O_EXCL, 0644);
    write_all(fd.get(), content);
    CHECK(fstat_of(fd.get()).st_size == static_cast<off_t>(content.size()));
    // A second reader sees the bytes while the writer still holds the file open.
    CHECK(read_path(m / "a.txt") == content);
    fd.reset();

    struct stat st = stat_of(m / "a.txt");
    CHECK(S_ISREG(st.st_mode));
    CHECK(permissions(st) == 0644u);
    CHECK(st.st_nlink == 1u);
    CHECK(st.st_uid == ::geteuid());
    CHECK(st.st_size == static_cast<off_t>(content.size()));
    CHECK(read_path(m / "a.txt") == content);
    CHECK(names_in(m.mount.path()) == std::set<std::string>{"a.txt"});

    // Reads at an offset return that part of the file.
    auto reader = open_fd(m / "a.txt", O_RDONLY);
    char buffer[5] = {};
    REQUIRE(::pread(reader.get(), buffer, sizeof buffer, 7) == 5);
    CHECK(std::string(buffer, 5) == "fbfs\n");
}

TEST_CASE("Mount: an empty file exists with size zero", "[fuse]") {
    MountedStore m;
    open_fd(m / "empty", O_WRONLY | O_CREAT, 0600);
    struct stat st = stat_of(m / "empty");
    CHECK(st.st_size == 0);
    CHECK(permissions(st) == 0600u);
    CHECK(read_path(m / "empty").empty());
}

TEST_CASE("Mount: O_CREAT|O_EXCL on an existing file fails with EEXIST", "[fuse]") {
    MountedStore m;
    put_file(m / "f", "original");
    CHECK(open_outcome(m / "f", O_WRONLY | O_CREAT | O_EXCL) == "EEXIST");
    CHECK(read_path(m / "f") == "original");
    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
    CHECK(open_outcome(m / "d", O_WRONLY | O_CREAT | O_EXCL) == "EEXIST");
    CHECK(open_outcome(m / "missing", O_RDONLY) == "ENOENT");
}

TEST_CASE("Mount: O_TRUNC empties an existing file", "[fuse]") {
    MountedStore m;
    put_file(m / "f", "abcdefgh");
    {
        auto fd = open_fd(m / "f", O_WRONLY | O_TRUNC);
        CHECK(fstat_of(fd.get()).st_size == 0);
        CHECK(stat_of(m / "f").st_size == 0);
        write_all(fd.get(), "xy");
    }
    CHECK(stat_of(m / "f").st_size == 2);
    CHECK(read_path(m / "f") == "xy");
}

TEST_CASE("Mount: O_APPEND writes go to the end of the file", "[fuse]") {
    MountedStore m;
    put_file(m / "log", "abc");
    {
        auto first = open_fd(m / "log", O_WRONLY | O_APPEND);
        auto second = open_fd(m / "log", O_WRONLY | O_APPEND);
        REQUIRE(::lseek(first.get(), 0, SEEK_SET) == 0);
        write_all(first.get(), "1");
        write_all(second.get(), "2");
        write_all(first.get(), "3");
    }
    CHECK(read_path(m / "log") == "abc123");
    CHECK(stat_of(m / "log").st_size == 6);
}

TEST_CASE("Mount: pwrite beyond the end leaves a hole that reads as zeros", "[fuse]") {
    MountedStore m;
    const off_t far = (1 << 20) + 3;
    std::string expected = "head" + std::string(static_cast<std::size_t>(far) - 4, '\0') + "tail";
    {
        auto fd = open_fd(m / "sparse", O_RDWR | O_CREAT, 0644);
        write_all(fd.get(), "head");
        pwrite_all(fd.get(), "tail", far);
        CHECK(fstat_of(fd.get()).st_size == far + 4);
        CHECK(pread_all(fd.get()) == expected);
    }
    CHECK(stat_of(m / "sparse").st_size == far + 4);
    CHECK(read_path(m / "sparse") == expected);
}

TEST_CASE("Mount: truncate extends a file with zeros and shrinks it", "[fuse]") {
    MountedStore m;
    put_file(m / "f", "0123456789");

    REQUIRE(outcome(::truncate((m / "f").c_str(), 20)) == "ok");
    CHECK(stat_of(m / "f").st_size == 20);
    CHECK(read_path(m / "f") == "0123456789" + std::string(10, '\0'));

    REQUIRE(outcome(::truncate((m / "f").c_str(), 4)) == "ok");
    CHECK(stat_of(m / "f").st_size == 4);
    CHECK(read_path(m / "f") == "0123");

    // Growing again must not bring back the bytes cut off before.
    REQUIRE(outcome(::truncate((m / "f").c_str(), 8)) == "ok");
    CHECK(read_path(m / "f") == "0123" + std::string(4, '\0'));

    REQUIRE(outcome(::truncate((m / "f").c_str(), 0)) == "ok");
    CHECK(stat_of(m / "f").st_size == 0);
    CHECK(read_path(m / "f").empty());
}

TEST_CASE("Mount: ftruncate on an open descriptor changes the size everyone sees", "[fuse]") {
    MountedStore m;
    {
        auto fd = open_fd(m / "f", O_RDWR | O_CREAT, 0644);
        write_all(fd.get(), "abcdefgh");
        REQUIRE(outcome(::ftruncate(fd.get(), 3)) == "ok");
        CHECK(fstat_of(fd.get()).st_size == 3);
        CHECK(stat_of(m / "f").st_size == 3);
        CHECK(read_path(m / "f") == "abc");
        pwrite_all(fd.get(), "Z", 5);
        CHECK(pread_all(fd.get()) == std::string("abc\0\0Z", 6));
    }
    CHECK(read_path(m / "f") == std::string("abc\0\0Z", 6));
}

TEST_CASE("Mount: fallocate extends a file with zeros", "[fuse]") {
    MountedStore m;
    {
        auto fd = open_fd(m / "f", O_RDWR | O_CREAT, 0644);
        write_all(fd.get(), "abc");
        REQUIRE(outcome(::fallocate(fd.get(), 0, 0, 4096)) == "ok");
        CHECK(fstat_of(fd.get()).st_size == 4096);
        CHECK(pread_all(fd.get()) == "abc" + std::string(4093, '\0'));
    }
    m.mount.remount();
    CHECK(stat_of(m / "f").st_size == 4096);
    CHECK(read_path(m / "f") == "abc" + std::string(4093, '\0'));
}

TEST_CASE("Mount: bytes written through a shared mapping are kept", "[fuse]") {
    MountedStore m;
    // The way linkers such as lld write their output: size the file, map it, write, unmap,
    // close and rename into place, without msync.
    const std::size_t size = 5 * 4096 + 123;
    const std::string content = random_bytes(9, size);
    {
        auto fd = open_fd(m / "out.tmp", O_RDWR | O_CREAT | O_EXCL, 0755);
        REQUIRE(outcome(::ftruncate(fd.get(), static_cast<off_t>(size))) == "ok");
        void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
        REQUIRE(map != MAP_FAILED);
        std::memcpy(map, content.data(), size);
        REQUIRE(::munmap(map, size) == 0);
    }
    REQUIRE(::rename((m / "out.tmp").c_str(), (m / "out").c_str()) == 0);
    CHECK(read_path(m / "out") == content);

    m.mount.remount();
    CHECK(stat_of(m / "out").st_size == static_cast<off_t>(size));
    CHECK(read_path(m / "out") == content);
}

TEST_CASE("Mount: programs and scripts on the mount can be executed", "[fuse]") {
    MountedStore m;
    put_file(m / "script.sh", "#!/bin/sh\necho \"ran $1\"\n", 0755);
    auto script = fbfs::test::run({(m / "script.sh").string(), "here"});
    CHECK(script.status == 0);
    CHECK(script.out == "ran here\n");

    // A real executable, copied in the way cp does it.
    fs::copy_file("/bin/echo", m / "echo");
    REQUIRE(::chmod((m / "echo").c_str(), 0755) == 0);
    CHECK(read_path(m / "echo") == read_path("/bin/echo"));
    auto echo = fbfs::test::run({(m / "echo").string(), "copied", "binary"});
    CHECK(echo.status == 0);
    CHECK(echo.out == "copied binary\n");
}

// ---------------------------------------------------------------------------------------------
// Directories.

TEST_CASE("Mount: mkdir and rmdir create and remove directories", "[fuse]") {
    MountedStore m;
    REQUIRE(outcome(::mkdir((m / "d").c_str(), 0750)) == "ok");
    struct stat st = stat_of(m / "d");
    CHECK(S_ISDIR(st.st_mode));
    CHECK(permissions(st) == 0750u);
    CHECK(names_in(m / "d").empty());
    CHECK(outcome(::mkdir((m / "d").c_str(), 0755)) == "EEXIST");

    REQUIRE(outcome(::mkdir((m / "d/sub").c_str(), 0755)) == "ok");
    put_file(m / "d/sub/f", "x");
    CHECK(read_path(m / "d/sub/f") == "x");

    CHECK(outcome(::mkdir((m / "missing/sub").c_str(), 0755)) == "ENOENT");

    REQUIRE(outcome(::unlink((m / "d/sub/f").c_str())) == "ok");
    REQUIRE(outcome(::rmdir((m / "d/sub").c_str())) == "ok");
    REQUIRE(outcome(::rmdir((m / "d").c_str())) == "ok");
    CHECK(stat_outcome(m / "d") == "ENOENT");
    CHECK(names_in(m.mount.path()).empty());
}

TEST_CASE("Mount: rmdir of a non-empty directory fails with ENOTEMPTY", "[fuse]") {
    MountedStore m;
    REQUIRE(::mkdir((m / "with-file").c_str(), 0755) == 0);
    put_file(m / "with-file/f", "x");
    REQUIRE(::mkdir((m / "with-dir").c_str(), 0755) == 0);
    REQUIRE(::mkdir((m / "with-dir/sub").c_str(), 0755) == 0);
    REQUIRE(::mkdir((m / "with-link").c_str(), 0755) == 0);
    REQUIRE(::symlink("nowhere", (m / "with-link/l").c_str()) == 0);

    CHECK(outcome(::rmdir((m / "with-file").c_str())) == "ENOTEMPTY");
    CHECK(outcome(::rmdir((m / "with-dir").c_str())) == "ENOTEMPTY");
    CHECK(outcome(::rmdir((m / "with-link").c_str())) == "ENOTEMPTY");
    CHECK(read_path(m / "with-file/f") == "x");
    CHECK(S_ISDIR(stat_of(m / "with-dir/sub").st_mode));
    CHECK(readlink_of(m / "with-link/l") == "nowhere");
}

TEST_CASE("Mount: unlink of a directory fails with EISDIR and rmdir of a file with ENOTDIR",
          "[fuse]") {
    MountedStore m;
    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
    put_file(m / "f", "x");
    CHECK(outcome(::unlink((m / "d").c_str())) == "EISDIR");
    CHECK(outcome(::rmdir((m / "f").c_str())) == "ENOTDIR");
    CHECK(outcome(::unlink((m / "missing").c_str())) == "ENOENT");
    CHECK(S_ISDIR(stat_of(m / "d").st_mode));
    CHECK(read_path(m / "f") == "x");
}

TEST_CASE("Mount: a directory's link count is two plus its subdirectories", "[fuse]") {
    MountedStore m;
    const auto root = m.mount.path();
    CHECK(stat_of(root).st_nlink == 2u);

    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
    CHECK(stat_of(m / "d").st_nlink == 2u);
    CHECK(stat_of(root).st_nlink == 3u);

    REQUIRE(::mkdir((m / "d/a").c_str(), 0755) == 0);
    REQUIRE(::mkdir((m / "d/b").c_str(), 0755) == 0);
    put_file(m / "d/file", "not a directory");
    CHECK(stat_of(m / "d").st_nlink == 4u);

    REQUIRE(::rmdir((m / "d/a").c_str()) == 0);
    CHECK(stat_of(m / "d").st_nlink == 3u);

    // Moving a directory moves its ".." link from the old parent to the new one.
    REQUIRE(::rename((m / "d/b").c_str(), (m / "b").c_str()) == 0);
    CHECK(stat_of(m / "d").st_nlink == 2u);
    CHECK(stat_of(root).st_nlink == 4u);
}

TEST_CASE("Mount: readdir of an empty directory shows only . and ..", "[fuse]") {
    MountedStore m;
    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
    CHECK(readdir_counts(m / "d") == std::map<std::string, int>{{".", 1}, {"..", 1}});
    CHECK(readdir_counts(m.mount.path()) ==
          std::map<std::string, int>{{".", 1}, {"..", 1}, {"d", 1}});
}

TEST_CASE("Mount: readdir lists ten thousand entries exactly once each", "[fuse]") {
    MountedStore m;
    REQUIRE(::mkdir((m / "many").c_str(), 0755) == 0);
    std::map<std::string, int> expected{{".", 1}, {"..", 1}};
    for (int i = 0; i < 10000; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "file-%05d", i);
        open_fd(m / "many" / name, O_WRONLY | O_CREAT | O_EXCL, 0644);
        expected[name] = 1;
    }
    auto seen = readdir_counts(m / "many");
    CHECK(seen.size() == expected.size());
    int missing = 0, repeated = 0, unexpected = 0;
    for (const auto& [name, count] : expected) {
        auto it = seen.find(name);
        if (it == seen.end()) {
            ++missing;
        } else if (it->second != 1) {
            ++repeated;
        }
    }
    for (const auto& [name, count] : seen) {
        unexpected += expected.contains(name) ? 0 : 1;
    }
    CHECK(missing == 0);
    CHECK(repeated == 0);
    CHECK(unexpected == 0);

    // A second pass through a fresh stream sees the same.
    CHECK(readdir_counts(m / "many") == seen);
}

// ---------------------------------------------------------------------------------------------
// Symlinks and hard links.

TEST_CASE("Mount: a symlink reads back its target and lstat shows a link", "[fuse]") {
    MountedStore m;
    put_file(m / "a.txt", "through the link");
    const std::string target = "a.txt";
    REQUIRE(outcome(::symlink(target.c_str(), (m / "l").c_str())) == "ok");
    CHECK(readlink_of(m / "l") == target);
    struct stat st = lstat_of(m / "l");
    CHECK(S_ISLNK(st.st_mode));
    CHECK(st.st_size == static_cast<off_t>(target.size()));
    CHECK(read_path(m / "l") == "through the link");
    CHECK(S_ISREG(stat_of(m / "l").st_mode));

    // Targets are kept byte for byte, long ones included.
    const std::string long_target = "../" + std::string(200, 'x') + "/with spaces/ünïcode";
    REQUIRE(outcome(::symlink(long_target.c_str(), (m / "long").c_str())) == "ok");
    CHECK(readlink_of(m / "long") == long_target);
    CHECK(lstat_of(m / "long").st_size == static_cast<off_t>(long_target.size()));

    CHECK(outcome(::symlink("x", (m / "a.txt").c_str())) == "EEXIST");
}

TEST_CASE("Mount: a dangling symlink can be made and read", "[fuse]") {
    MountedStore m;
    REQUIRE(outcome(::symlink("does/not/exist", (m / "dangling").c_str())) == "ok");
    CHECK(readlink_of(m / "dangling") == "does/not/exist");
    CHECK(S_ISLNK(lstat_of(m / "dangling").st_mode));
    struct stat st {};
    CHECK(outcome(::stat((m / "dangling").c_str(), &st)) == "ENOENT");
    CHECK(names_in(m.mount.path()) == std::set<std::string>{"dangling"});
    REQUIRE(outcome(::unlink((m / "dangling").c_str())) == "ok");
    CHECK(stat_outcome(m / "dangling") == "ENOENT");
}

TEST_CASE("Mount: a hard link shares the inode, data and link count with the original", "[fuse]") {
    MountedStore m;
    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
    put_file(m / "a", "one");
    REQUIRE(outcome(::link((m / "a").c_str(), (m / "d/b").c_str())) == "ok");

    struct stat a = stat_of(m / "a");
    struct stat b = stat_of(m / "d/b");
    CHECK(a.st_ino == b.st_ino);
    CHECK(a.st_nlink == 2u);
    CHECK(b.st_nlink == 2u);
    CHECK(read_path(m / "d/b") == "one");

    put_file(m / "d/b", "two, longer");
    CHECK(read_path(m / "a") == "two, longer");
    CHECK(stat_of(m / "a").st_size == 11);

    REQUIRE(outcome(::unlink((m / "a").c_str())) == "ok");
    CHECK(stat_outcome(m / "a") == "ENOENT");
    CHECK(stat_of(m / "d/b").st_nlink == 1u);
    CHECK(read_path(m / "d/b") == "two, longer");

    CHECK(outcome(::link((m / "d/b").c_str(), (m / "d/b").c_str())) == "EEXIST");
}

// ---------------------------------------------------------------------------------------------
// Rename.

TEST_CASE("Mount: rename moves a file within and across directories", "[fuse]") {
    MountedStore m;
    put_file(m / "a", "payload");
    const ino_t ino = stat_of(m / "a").st_ino;
    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
    REQUIRE(::mkdir((m / "e").c_str(), 0755) == 0);

    REQUIRE(outcome(::rename((m / "a").c_str(), (m / "b").c_str())) == "ok");
    CHECK(stat_outcome(m / "a") == "ENOENT");
    CHECK(read_path(m / "b") == "payload");
    CHECK(stat_of(m / "b").st_ino == ino);

    REQUIRE(outcome(::rename((m / "b").c_str(), (m / "d/c").c_str())) == "ok");
    CHECK(stat_outcome(m / "b") == "ENOENT");
    CHECK(read_path(m / "d/c") == "payload");
    CHECK(names_in(m.mount.path()) == std::set<std::string>{"d", "e"});

    // A directory moves with everything in it.
    REQUIRE(outcome(::rename((m / "d").c_str(), (m / "e/moved").c_str())) == "ok");
    CHECK(read_path(m / "e/moved/c") == "payload");
    CHECK(stat_outcome(m / "d") == "ENOENT");

    CHECK(outcome(::rename((m / "missing").c_str(), (m / "x").c_str())) == "ENOENT");
}

TEST_CASE("Mount: rename over an existing file replaces it", "[fuse]") {
    MountedStore m;
    put_file(m / "new", "new content");
    put_file(m / "old", "old content");
    // The replaced inode lives on through its other name and an open descriptor.
    REQUIRE(::link((m / "old").c_str(), (m / "old-link").c_str()) == 0);
    auto old_fd = open_fd(m / "old", O_RDONLY);

    REQUIRE(outcome(::rename((m / "new").c_str(), (m / "old").c_str())) == "ok");
    CHECK(stat_outcome(m / "new") == "ENOENT");
    CHECK(read_path(m / "old") == "new content");
    CHECK(stat_of(m / "old").st_nlink == 1u);
    CHECK(read_path(m / "old-link") == "old content");
    CHECK(stat_of(m / "old-link").st_nlink == 1u);
    CHECK(pread_all(old_fd.get()) == "old content");
    CHECK(names_in(m.mount.path()) == std::set<std::string>{"old", "old-link"});
}

TEST_CASE("Mount: rename of a directory over an empty directory replaces it", "[fuse]") {
    MountedStore m;
    REQUIRE(::mkdir((m / "a").c_str(), 0755) == 0);
    put_file(m / "a/f", "inside");
    REQUIRE(::mkdir((m / "b").c_str(), 0755) == 0);
    CHECK(stat_of(m.mount.path()).st_nlink == 4u);

    REQUIRE(outcome(::rename((m / "a").c_str(), (m / "b").c_str())) == "ok");
    CHECK(stat_outcome(m / "a") == "ENOENT");
    CHECK(read_path(m / "b/f") == "inside");
    CHECK(names_in(m.mount.path()) == std::set<std::string>{"b"});
    CHECK(stat_of(m.mount.path()).st_nlink == 3u);
}

TEST_CASE("Mount: rename of a directory onto a non-empty directory fails with ENOTEMPTY",
          "[fuse]") {
    MountedStore m;
    REQUIRE(::mkdir((m / "a").c_str(), 0755) == 0);
    REQUIRE(::mkdir((m / "b").c_str(), 0755) == 0);
    put_file(m / "b/keep", "kept");
    CHECK(outcome(::rename((m / "a").c_str(), (m / "b").c_str())) == "ENOTEMPTY");
    CHECK(S_ISDIR(stat_of(m / "a").st_mode));
    CHECK(read_path(m / "b/keep") == "kept");
}

TEST_CASE("Mount: RENAME_NOREPLACE refuses an existing target with EEXIST", "[fuse]") {
    MountedStore m;
    put_file(m / "a", "a");
    put_file(m / "b", "b");
    CHECK(outcome(rename2(m / "a", m / "b", RENAME_NOREPLACE)) == "EEXIST");
    CHECK(read_path(m / "a") == "a");
    CHECK(read_path(m / "b") == "b");

    REQUIRE(outcome(rename2(m / "a", m / "c", RENAME_NOREPLACE)) == "ok");
    CHECK(stat_outcome(m / "a") == "ENOENT");
    CHECK(read_path(m / "c") == "a");
}

TEST_CASE("Mount: RENAME_EXCHANGE swaps two files", "[fuse]") {
    MountedStore m;
    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
    put_file(m / "a", "content of a");
    put_file(m / "d/b", "content of b");
    const ino_t ino_a = stat_of(m / "a").st_ino;
    const ino_t ino_b = stat_of(m / "d/b").st_ino;

    REQUIRE(outcome(rename2(m / "a", m / "d/b", RENAME_EXCHANGE)) == "ok");
    CHECK(read_path(m / "a") == "content of b");
    CHECK(read_path(m / "d/b") == "content of a");
    CHECK(stat_of(m / "a").st_ino == ino_b);
    CHECK(stat_of(m / "d/b").st_ino == ino_a);

    CHECK(outcome(rename2(m / "a", m / "missing", RENAME_EXCHANGE)) == "ENOENT");
}

TEST_CASE("Mount: RENAME_EXCHANGE swaps a file and a directory", "[fuse]") {
    MountedStore m;
    REQUIRE(::mkdir((m / "sub").c_str(), 0755) == 0);
    put_file(m / "sub/f", "file data");
    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
    put_file(m / "d/child", "child data");
    CHECK(stat_of(m.mount.path()).st_nlink == 4u);

    REQUIRE(outcome(rename2(m / "sub/f", m / "d", RENAME_EXCHANGE)) == "ok");
    CHECK(S_ISREG(stat_of(m / "d").st_mode));
    CHECK(read_path(m / "d") == "file data");
    CHECK(S_ISDIR(stat_of(m / "sub/f").st_mode));
    CHECK(read_path(m / "sub/f/child") == "child data");
    // The directory moved from the root into sub: the root lost a subdirectory, sub gained one.
    CHECK(stat_of(m.mount.path()).st_nlink == 3u);
    CHECK(stat_of(m / "sub").st_nlink == 3u);
}

// ---------------------------------------------------------------------------------------------
// Attributes: modes, owners, times.

TEST_CASE("Mount: chmod changes the mode and the ctime but not the mtime", "[fuse]") {
    MountedStore m;
    put_file(m / "f", "x", 0644);
    struct stat before = stat_of(m / "f");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));

    REQUIRE(outcome(::chmod((m / "f").c_str(), 0600)) == "ok");
    struct stat after = stat_of(m / "f");
    CHECK(permissions(after) == 0600u);
    CHECK(S_ISREG(after.st_mode));
    CHECK(time_text(after.st_ctim) > time_text(before.st_ctim));
    CHECK(time_text(after.st_mtim) == time_text(before.st_mtim));

    auto fd = open_fd(m / "f", O_RDONLY);
    REQUIRE(outcome(::fchmod(fd.get(), 0755)) == "ok");
    CHECK(permissions(fstat_of(fd.get())) == 0755u);
    CHECK(permissions(stat_of(m / "f")) == 0755u);

    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
    REQUIRE(outcome(::chmod((m / "d").c_str(), 0700)) == "ok");
    CHECK(permissions(stat_of(m / "d")) == 0700u);
    CHECK(S_ISDIR(stat_of(m / "d").st_mode));
}

TEST_CASE("Mount: chown as root changes the owner and group", "[fuse]") {
    fbfs::test::require_root();
    MountedStore m;
    put_file(m / "f", "x");
    REQUIRE(outcome(::chown((m / "f").c_str(), 1234, 1234)) == "ok");
    struct stat st = stat_of(m / "f");
    CHECK(st.st_uid == 1234u);
    CHECK(st.st_gid == 1234u);

    // -1 leaves that id as it is.
    REQUIRE(outcome(::chown((m / "f").c_str(), static_cast<uid_t>(-1), 5678)) == "ok");
    st = stat_of(m / "f");
    CHECK(st.st_uid == 1234u);
    CHECK(st.st_gid == 5678u);

    // lchown changes the link, not its target.
    REQUIRE(::symlink("f", (m / "l").c_str()) == 0);
    REQUIRE(outcome(::lchown((m / "l").c_str(), 42, 43)) == "ok");
    CHECK(lstat_of(m / "l").st_uid == 42u);
    CHECK(lstat_of(m / "l").st_gid == 43u);
    CHECK(stat_of(m / "f").st_uid == 1234u);
}

TEST_CASE("Mount: utimensat sets exact nanosecond times", "[fuse]") {
    MountedStore m;
    put_file(m / "f", "x");
    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);

    set_times(m / "f", at(1000000000, 123456789), at(1234567890, 987654321));
    struct stat st = stat_of(m / "f");
    CHECK(time_text(st.st_atim) == "1000000000.123456789");
    CHECK(time_text(st.st_mtim) == "1234567890.987654321");

    set_times(m / "d", at(1500000000, 1), at(1500000001, 999999999));
    st = stat_of(m / "d");
    CHECK(time_text(st.st_atim) == "1500000000.000000001");
    CHECK(time_text(st.st_mtim) == "1500000001.999999999");

    // UTIME_OMIT leaves that time alone.
    set_times(m / "f", at(1111111111, 111111111), at(0, UTIME_OMIT));
    st = stat_of(m / "f");
    CHECK(time_text(st.st_atim) == "1111111111.111111111");
    CHECK(time_text(st.st_mtim) == "1234567890.987654321");

    set_times(m / "f", at(0, UTIME_OMIT), at(1222222222, 5));
    st = stat_of(m / "f");
    CHECK(time_text(st.st_atim) == "1111111111.111111111");
    CHECK(time_text(st.st_mtim) == "1222222222.000000005");

    // UTIME_NOW sets the current time.
    double before = seconds_now();
    set_times(m / "f", at(0, UTIME_NOW), at(0, UTIME_NOW));
    double after = seconds_now();
    st = stat_of(m / "f");
    CHECK(seconds(st.st_mtim) >= before - 1.0);
    CHECK(seconds(st.st_mtim) <= after + 1.0);
    CHECK(seconds(st.st_atim) >= before - 1.0);
    CHECK(seconds(st.st_atim) <= after + 1.0);

    // Through a symlink, utimensat changes the target; with AT_SYMLINK_NOFOLLOW, the link.
    REQUIRE(::symlink("f", (m / "l").c_str()) == 0);
    set_times(m / "l", at(1300000000, 7), at(1300000000, 8));
    CHECK(time_text(stat_of(m / "f").st_mtim) == "1300000000.000000008");
    set_times(m / "l", at(1400000000, 7), at(1400000000, 9), AT_SYMLINK_NOFOLLOW);
    CHECK(time_text(lstat_of(m / "l").st_mtim) == "1400000000.000000009");
    CHECK(time_text(stat_of(m / "f").st_mtim) == "1300000000.000000008");
}

TEST_CASE(
    "Mount: times set on a file with unsaved changes are kept by its close, its fsync and "
    "a remount after a killed daemon",
    "[fuse]") {
    MountedStore m;
    put_file(m / "closed", "a");
    put_file(m / "synced", "a");
    // The daemon holds the appended byte in a staging file when the times arrive (the setattr
    // the writeback cache sends before every flush is of this kind).
    auto append_then_set_times = [&](const fs::path& path, time_t mtime) {
        auto fd = open_fd(path, O_WRONLY | O_APPEND);
        write_all(fd.get(), "b");
        REQUIRE(::sync_file_range(fd.get(), 0, 0,
                                  SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                      SYNC_FILE_RANGE_WAIT_AFTER) == 0);
        const timespec times[2] = {at(mtime - 1, 1), at(mtime, 2)};
        REQUIRE(::futimens(fd.get(), times) == 0);
        return fd;
    };
    append_then_set_times(m / "closed", 1000000000).reset();
    CHECK(time_text(stat_of(m / "closed").st_mtim) == "1000000000.000000002");

    auto synced = append_then_set_times(m / "synced", 1200000000);
    REQUIRE(::fsync(synced.get()) == 0);
    const auto pid = fbfs::test::daemon_pid(m.mount.path());
    REQUIRE(pid);
    REQUIRE(::kill(*pid, SIGKILL) == 0);  // the daemon this test started
    REQUIRE(fbfs::wait_until_exited(*pid, std::chrono::seconds(10)));
    synced.reset();
    m.mount.unmount();  // fbfs umount recovers a dead mount
    m.mount.mount();
    for (const auto& [name, mtime] :
         {std::pair{"closed", "1000000000.000000002"}, {"synced", "1200000000.000000002"}}) {
        INFO(name);
        CHECK(read_path(m / name) == "ab");
        CHECK(time_text(stat_of(m / name).st_mtim) == mtime);
        CHECK(time_text(stat_of(m / name).st_atim)
                  .starts_with(std::to_string(std::stoll(std::string(mtime).substr(0, 10)) - 1)));
    }
}

TEST_CASE("Mount: writing or truncating a file updates its mtime and ctime", "[fuse]") {
    MountedStore m;
    put_file(m / "f", "a");
    set_times(m / "f", at(1000000000, 5), at(1000000000, 5));

    double before = seconds_now();
    {
        auto fd = open_fd(m / "f", O_WRONLY | O_APPEND);
        write_all(fd.get(), "b");
    }
    double after = seconds_now();
    struct stat st = stat_of(m / "f");
    CHECK(seconds(st.st_mtim) >= before - 1.0);
    CHECK(seconds(st.st_mtim) <= after + 1.0);
    CHECK(seconds(st.st_ctim) >= before - 1.0);
    CHECK(read_path(m / "f") == "ab");

    set_times(m / "f", at(1000000000, 5), at(1000000000, 5));
    REQUIRE(::truncate((m / "f").c_str(), 1) == 0);
    st = stat_of(m / "f");
    CHECK(seconds(st.st_mtim) >= before - 1.0);

    // The mtime a writer sees after close stays: reopening for reading does not move it.
    std::string mtime = time_text(stat_of(m / "f").st_mtim);
    CHECK(read_path(m / "f") == "a");
    CHECK(time_text(stat_of(m / "f").st_mtim) == mtime);
}

TEST_CASE("Mount: adding and removing entries updates the directory's mtime", "[fuse]") {
    MountedStore m;
    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
    auto make_old = [&] { set_times(m / "d", at(1000000000, 0), at(1000000000, 0)); };
    double before = seconds_now();

    make_old();
    put_file(m / "d/f", "x");
    CHECK(seconds(stat_of(m / "d").st_mtim) >= before - 1.0);

    make_old();
    REQUIRE(::rename((m / "d/f").c_str(), (m / "d/g").c_str()) == 0);
    CHECK(seconds(stat_of(m / "d").st_mtim) >= before - 1.0);

    make_old();
    REQUIRE(::unlink((m / "d/g").c_str()) == 0);
    CHECK(seconds(stat_of(m / "d").st_mtim) >= before - 1.0);
}

// ---------------------------------------------------------------------------------------------
// Special files and statfs (extended attributes: xattr_test.cpp).

TEST_CASE("Mount: mknod makes a FIFO that works as a pipe", "[fuse]") {
    MountedStore m;
    REQUIRE(outcome(::mknod((m / "fifo").c_str(), S_IFIFO | 0644, 0)) == "ok");
    struct stat st = lstat_of(m / "fifo");
    CHECK(S_ISFIFO(st.st_mode));
    CHECK(permissions(st) == 0644u);

    auto fd = open_fd(m / "fifo", O_RDWR | O_NONBLOCK);
    write_all(fd.get(), "ping");
    char buffer[8] = {};
    CHECK(::read(fd.get(), buffer, sizeof buffer) == 4);
    CHECK(std::string(buffer, 4) == "ping");
}

TEST_CASE("Mount: statfs works on the mount", "[fuse]") {
    MountedStore m;
    struct statfs info {};
    REQUIRE(outcome(::statfs(m.mount.path().c_str(), &info)) == "ok");
    CHECK(info.f_bsize > 0);
    CHECK(info.f_namelen >= 255);
    put_file(m / "f", "x");
    REQUIRE(outcome(::statfs((m / "f").c_str(), &info)) == "ok");
    CHECK(info.f_bsize > 0);
}

// ---------------------------------------------------------------------------------------------
// Lifetime: open-but-unlinked files, remounts, volumes.

TEST_CASE("Mount: an unlinked file stays usable through a descriptor opened before", "[fuse]") {
    MountedStore m;
    put_file(m / "f", "payload");
    auto reader = open_fd(m / "f", O_RDONLY);
    auto writer = open_fd(m / "f", O_RDWR);

    REQUIRE(outcome(::unlink((m / "f").c_str())) == "ok");
    CHECK(stat_outcome(m / "f") == "ENOENT");
    CHECK(names_in(m.mount.path()).empty());
    CHECK(fstat_of(reader.get()).st_nlink == 0u);
    CHECK(pread_all(reader.get()) == "payload");

    pwrite_all(writer.get(), "+more", 7);
    CHECK(pread_all(reader.get()) == "payload+more");

    // A new file under the old name is a different file.
    put_file(m / "f", "new");
    CHECK(read_path(m / "f") == "new");
    CHECK(pread_all(reader.get()) == "payload+more");

    reader.reset();
    writer.reset();
    CHECK(read_path(m / "f") == "new");
    CHECK(names_in(m.mount.path()) == std::set<std::string>{"f"});
}

TEST_CASE("Mount: a tree survives unmounting and mounting again, at any mountpoint", "[fuse]") {
    MountedStore m;
    const bool root = ::geteuid() == 0;
    put_file(m / "exec.sh", "#!/bin/sh\necho hi\n", 0755);
    put_file(m / "private", std::string("with\0nul bytes", 14), 0600);
    put_file(m / "empty", "", 0644);
    put_file(m / "blob", random_bytes(2, 3 << 20), 0644);
    put_file(m / "same-as-blob", random_bytes(2, 3 << 20), 0444);
    {
        auto fd = open_fd(m / "sparse", O_WRONLY | O_CREAT, 0644);
        pwrite_all(fd.get(), "end", 200000);
    }
    REQUIRE(::mkdir((m / "dir").c_str(), 0750) == 0);
    REQUIRE(::mkdir((m / "dir/empty-dir").c_str(), 0700) == 0);
    put_file(m / "dir/nested.txt", "nested\n");
    REQUIRE(::link((m / "private").c_str(), (m / "dir/private-link").c_str()) == 0);
    REQUIRE(::symlink("dir/nested.txt", (m / "link").c_str()) == 0);
    REQUIRE(::symlink("nowhere", (m / "dangling").c_str()) == 0);
    REQUIRE(::mknod((m / "fifo").c_str(), S_IFIFO | 0640, 0) == 0);
    if (root) {
        REQUIRE(::chown((m / "dir/nested.txt").c_str(), 1234, 1234) == 0);
    }
    set_times(m / "exec.sh", at(1600000000, 111111111), at(1600000000, 111111111));
    set_times(m / "private", at(1600000001, 222222222), at(1600000001, 222222222));
    set_times(m / "blob", at(1600000002, 1), at(1600000002, 2));
    set_times(m / "link", at(1600000003, 3), at(1600000003, 4), AT_SYMLINK_NOFOLLOW);
    set_times(m / "dir/nested.txt", at(1, 0), at(2, 999999999));
    // Directories last: adding entries above moved their mtimes.
    set_times(m / "dir", at(1600000004, 5), at(1600000004, 333333333));
    set_times(m.mount.path(), at(1600000005, 6), at(1600000005, 444444444));

    const auto before = snapshot(m.mount.path());
    const auto inodes = inode_numbers(m.mount.path());
    // Guard against a snapshot that would miss what it should compare.
    REQUIRE(before.size() == 14u);
    CHECK(before.at("dir/private-link").find("nlink=2") != std::string::npos);

    m.mount.remount();
    check_same_tree(before, snapshot(m.mount.path()));
    CHECK(inode_numbers(m.mount.path()) == inodes);
    CHECK(stat_of(m / "private").st_ino == stat_of(m / "dir/private-link").st_ino);
    CHECK(readlink_of(m / "dangling") == "nowhere");

    // Writes after a remount go to the same file the other name sees.
    put_file(m / "dir/private-link", "rewritten");
    CHECK(read_path(m / "private") == "rewritten");
    set_times(m / "private", at(1600000001, 222222222), at(1600000001, 222222222));
    auto after_rewrite = snapshot(m.mount.path());

    m.mount.unmount();
    Mount elsewhere(m.store(), m.tmp / "another" / "mountpoint");
    check_same_tree(after_rewrite, snapshot(elsewhere.path()));
    CHECK(inode_numbers(elsewhere.path()) == inodes);
}

TEST_CASE("Mount: volumes of one store have separate trees", "[fuse]") {
    fbfs::test::TempDir tmp;
    {
        Mount first(tmp / "store", tmp / "first", {"--volume", "first"});
        Mount second(tmp / "store", tmp / "second", {"--volume", "second"});
        put_file(first / "only-in-first", "1");
        put_file(second / "only-in-second", "2");
        CHECK(names_in(first.path()) == std::set<std::string>{"only-in-first"});
        CHECK(names_in(second.path()) == std::set<std::string>{"only-in-second"});
    }
    Mount again(tmp / "store", tmp / "again", {"--volume", "second"});
    CHECK(names_in(again.path()) == std::set<std::string>{"only-in-second"});
    CHECK(read_path(again / "only-in-second") == "2");
}

// ---------------------------------------------------------------------------------------------
// The object pool behind the mount.

TEST_CASE("Mount: a thousand files with the same bytes are stored as one object", "[fuse]") {
    MountedStore m;
    const std::string same = random_bytes(7, 4096);
    const std::string other = random_bytes(8, 4096);
    REQUIRE(::mkdir((m / "copies").c_str(), 0755) == 0);
    for (int i = 0; i < 1000; ++i) {
        put_file(m / "copies" / ("copy-" + std::to_string(i)), same);
    }
    put_file(m / "other", other);
    CHECK(read_path(m / "copies/copy-0") == same);
    CHECK(read_path(m / "copies/copy-999") == same);
    CHECK(read_path(m / "other") == other);

    m.mount.unmount();
    auto files = object_files(m.store());
    for (const auto& file : files) {
        UNSCOPED_INFO("object file: " << file.lexically_relative(m.store()).string());
    }
    CHECK(files.size() == 2u);
    CHECK(fs::exists(object_path(m.store(), ObjectId::of(same))));
    CHECK(fs::exists(object_path(m.store(), ObjectId::of(other))));

    auto stat = fbfs::test::run_cli({"stat", "--store", m.store().string()});
    INFO("fbfs stat:\n" << stat.out << stat.err);
    CHECK(stat.status == 0);
    auto verify = fbfs::test::run_cli({"verify", "--store", m.store().string()});
    INFO("fbfs verify:\n" << verify.out << verify.err);
    CHECK(verify.status == 0);

    // Removing all but one name leaves that one readable.
    m.mount.mount();
    for (int i = 1; i < 1000; ++i) {
        REQUIRE(::unlink((m / "copies" / ("copy-" + std::to_string(i))).c_str()) == 0);
    }
    CHECK(read_path(m / "copies/copy-0") == same);
}

TEST_CASE("Mount: fsync puts a file's bytes in the object pool before close", "[fuse]") {
    MountedStore m;
    const std::string content = random_bytes(3, 256 * 1024);
    auto fd = open_fd(m / "f", O_WRONLY | O_CREAT, 0644);
    write_all(fd.get(), content);
    REQUIRE(outcome(::fsync(fd.get())) == "ok");
    const auto first = object_path(m.store(), ObjectId::of(content));
    CHECK(fs::exists(first));

    write_all(fd.get(), "more");
    REQUIRE(outcome(::fsync(fd.get())) == "ok");
    CHECK(fs::exists(object_path(m.store(), ObjectId::of(content + "more"))));
    fd.reset();
    CHECK(read_path(m / "f") == content + "more");

    // Fsyncing a directory, as programs do after a rename, succeeds too.
    REQUIRE(::mkdir((m / "d").c_str(), 0755) == 0);
    auto dir = open_fd(m / "d", O_RDONLY | O_DIRECTORY);
    CHECK(outcome(::fsync(dir.get())) == "ok");
}

TEST_CASE("Mount: a closed file's bytes are in the object pool", "[fuse]") {
    MountedStore m;
    const std::string content = random_bytes(4, 100000);
    put_file(m / "f", content);
    const auto object = object_path(m.store(), ObjectId::of(content));
    bool at_close = fs::exists(object);
    if (!at_close) {
        std::this_thread::sleep_for(std::chrono::seconds(2));
        WARN("object " << (fs::exists(object) ? "appeared within 2 s after close"
                                              : "still missing 2 s after close"));
    }
    CHECK(at_close);
}

TEST_CASE("Mount: a 64 MiB file reads back exactly, before and after a remount", "[fuse]") {
    MountedStore m;
    constexpr std::size_t k_chunk = 1 << 20;
    constexpr int k_chunks = 64;
    fbfs::Sha256 hasher;
    {
        auto fd = open_fd(m / "large", O_WRONLY | O_CREAT, 0644);
        for (int i = 0; i < k_chunks; ++i) {
            std::string chunk = random_bytes(static_cast<std::uint64_t>(100 + i), k_chunk);
            hasher.update(chunk.data(), chunk.size());
            write_all(fd.get(), chunk);
        }
    }
    const ObjectId id = hasher.finish();

    auto check_contents = [&] {
        CHECK(stat_of(m / "large").st_size == static_cast<off_t>(k_chunk * k_chunks));
        auto fd = open_fd(m / "large", O_RDONLY);
        std::string buffer(k_chunk, '\0');
        fbfs::Sha256 read_hasher;
        int first_bad_chunk = -1;
        for (int i = 0; i < k_chunks; ++i) {
            std::size_t got = 0;
            while (got < k_chunk) {
                ssize_t n = ::read(fd.get(), buffer.data() + got, k_chunk - got);
                REQUIRE(n > 0);
                got += static_cast<std::size_t>(n);
            }
            read_hasher.update(buffer.data(), buffer.size());
            if (first_bad_chunk < 0 &&
                buffer != random_bytes(static_cast<std::uint64_t>(100 + i), k_chunk)) {
                first_bad_chunk = i;
            }
        }
        char extra = 0;
        CHECK(::read(fd.get(), &extra, 1) == 0);
        CHECK(first_bad_chunk == -1);
        CHECK(read_hasher.finish().hex() == id.hex());
    };
    check_contents();
    CHECK(fs::exists(object_path(m.store(), id)));
    m.mount.remount();
    check_contents();
}
