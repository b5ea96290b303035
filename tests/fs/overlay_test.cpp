// `fbfs mount --source DIR`: an overlay with DIR as the read-only lower layer and the volume as the
// upper layer, asserted through a real mount with the POSIX calls programs use: merged lookups
// and readdir, copy-up on every kind of change, whiteouts and opaque directories, renames across
// layers, persistence of the upper layer, content-stable mtimes for lower files, refused bad
// input, and a source that changes under the mount. Every test that can also checks that DIR is
// byte-for-byte, mode-for-mode and mtime-for-mtime what it was before.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

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
using fbfs::test::check_refused;
using fbfs::test::check_same_tree;
using fbfs::test::force_unmount;
using fbfs::test::is_fuse_mounted;
using fbfs::test::lstat_of;
using fbfs::test::Mount;
using fbfs::test::MountpointGuard;
using fbfs::test::names_in;
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
using fbfs::test::run;
using fbfs::test::run_cli;
using fbfs::test::RunOptions;
using fbfs::test::RunResult;
using fbfs::test::seconds;
using fbfs::test::seconds_now;
using fbfs::test::set_times;
using fbfs::test::sh;
using fbfs::test::Snapshot;
using fbfs::test::snapshot;
using fbfs::test::stat_of;
using fbfs::test::stat_outcome;
using fbfs::test::sys_error;
using fbfs::test::TempDir;
using fbfs::test::time_text;
using fbfs::test::write_all;

namespace {

using Names = std::set<std::string>;
void make_dir(const fs::path& path, mode_t mode = 0755) {
    if (::mkdir(path.c_str(), mode) != 0) {
        throw sys_error("mkdir " + path.string());
    }
}

void set_mtime(const fs::path& path, timespec mtime) {
    set_times(path, mtime, mtime, AT_SYMLINK_NOFOLLOW);
}

std::string mtime_of(const fs::path& path) {
    return time_text(lstat_of(path).st_mtim);
}

std::string rename_outcome(const fs::path& from, const fs::path& to) {
    return outcome(::rename(from.c_str(), to.c_str()));
}

// Each name readdir(3) returns for `dir` (without . and ..) with its d_type.
std::map<std::string, unsigned char> readdir_types(const fs::path& dir) {
    DIR* stream = ::opendir(dir.c_str());
    if (stream == nullptr) {
        throw sys_error("opendir " + dir.string());
    }
    std::map<std::string, unsigned char> types;
    while (dirent* entry = ::readdir(stream)) {
        std::string name = entry->d_name;
        if (name != "." && name != "..") {
            types[name] = entry->d_type;
        }
    }
    ::closedir(stream);
    return types;
}

Snapshot without_root(Snapshot s) {
    s.erase(".");
    return s;
}

// The lines of `s` for one type ("file", "dir", "symlink").
Snapshot only(const Snapshot& s, const std::string& type) {
    Snapshot out;
    for (const auto& [path, line] : s) {
        if (line.starts_with(type + " ")) {
            out[path] = line;
        }
    }
    return out;
}

// Polls `condition` until it holds or `limit` passes: a change behind the mount's back reaches
// the kernel on the daemon's time.
template <typename Condition>
bool eventually(Condition condition,
                std::chrono::milliseconds limit = std::chrono::milliseconds(3000)) {
    return fbfs::test::within(limit, condition, std::chrono::milliseconds(50));
}

std::string quoted(const fs::path& path) {
    std::string out = "'";
    for (char c : path.string()) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

// Runs `script` with /bin/sh, asserting that it succeeded and said nothing on stderr.
void check_sh(const std::string& script) {
    auto result = sh(script);
    INFO("script: " << script << "\nstdout: " << result.out << "\nstderr: " << result.err);
    CHECK(result.status == 0);
    CHECK(result.err.empty());
}

// The lower tree most tests start from. Every entry has its own fixed mtime, so a change to any
// of them shows in a snapshot.
//   hello.txt  "hello lower\n" 0644       script.sh  0755 shell script
//   read-only.txt 0444                    big.bin    1 MiB of random_bytes(1)
//   dir/a.txt "a\n", dir/b.txt "b\n", dir/sub/c.txt "c\n"
//   empty-dir/                            link -> hello.txt, dangling -> nowhere
void make_lower(const fs::path& src) {
    fs::create_directories(src / "dir" / "sub");
    fs::create_directories(src / "empty-dir");
    put_file(src / "hello.txt", "hello lower\n", 0644);
    put_file(src / "script.sh", "#!/bin/sh\necho lower script\n", 0755);
    put_file(src / "read-only.txt", "read only\n", 0444);
    put_file(src / "big.bin", random_bytes(1, 1 << 20), 0644);
    put_file(src / "dir" / "a.txt", "a\n");
    put_file(src / "dir" / "b.txt", "b\n");
    put_file(src / "dir" / "sub" / "c.txt", "c\n");
    if (::symlink("hello.txt", (src / "link").c_str()) != 0 ||
        ::symlink("nowhere", (src / "dangling").c_str()) != 0) {
        throw sys_error("symlink");
    }
    const char* leaves[] = {"hello.txt", "script.sh",     "read-only.txt", "big.bin", "dir/a.txt",
                            "dir/b.txt", "dir/sub/c.txt", "link",          "dangling"};
    long i = 0;
    for (const char* leaf : leaves) {
        ++i;
        set_mtime(src / leaf, at(1500000000 + i * 1000, 100000000 + i));
    }
    // Directories last: adding entries moved their mtimes.
    set_mtime(src / "dir" / "sub", at(1500100000, 1));
    set_mtime(src / "dir", at(1500200000, 2));
    set_mtime(src / "empty-dir", at(1500300000, 3));
    set_mtime(src, at(1500400000, 4));
}

// A lower tree (from make_lower or another `populate`), a store, and the store's default volume
// mounted at tmp/mnt with `--source tmp/src-lower`. source_before is DIR as it was before the
// mount; finish() unmounts and checks that DIR is still exactly that.
struct Overlay {
    explicit Overlay(const std::function<void(const fs::path&)>& populate = make_lower) {
        populate(source);
        source_before = snapshot(source);
        mount.emplace(store(), tmp / "mnt", std::vector<std::string>{"--source", source.string()});
    }

    fs::path store() const { return tmp / "store"; }
    fs::path root() const { return mount->path(); }
    fs::path operator/(const std::string& name) const { return mount->path() / name; }

    // Unmounts (a failed unmount fails the test) and checks that DIR was never written.
    void finish() {
        mount->unmount();
        INFO("the source directory must be exactly as it was before the mount");
        check_same_tree(source_before, snapshot(source));
    }

    // Declared first so it is destroyed last, after the mount under it is gone.
    TempDir tmp;
    fs::path source = tmp / "src-lower";
    Snapshot source_before;
    std::optional<Mount> mount;
};

// Runs `fbfs mount --store STORE [extra] MOUNTPOINT` directly (not through Mount, which throws).
RunResult fbfs_mount(const fs::path& store, const fs::path& mountpoint,
                     const std::vector<std::string>& extra, const RunOptions& options = {}) {
    std::vector<std::string> args{"mount", "--store", store.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(mountpoint.string());
    return run_cli(args, options);
}

// Checks a directory rename in an overlay: either it worked (the tree moved whole, with every
// entry of both layers, and the old name is gone) or it failed with EXDEV and nothing changed.
// Returns the rename's outcome.
std::string check_dir_rename(const fs::path& root, const std::string& from, const std::string& to) {
    const auto whole_before = snapshot(root);
    const auto moved_before = without_root(snapshot(root / from));
    REQUIRE_FALSE(moved_before.empty());
    auto result = rename_outcome(root / from, root / to);
    INFO("rename " << from << " -> " << to << ": " << result);
    if (result == "ok") {
        CHECK(stat_outcome(root / from) == "ENOENT");
        check_same_tree(moved_before, without_root(snapshot(root / to)));
    } else {
        CHECK(result == "EXDEV");
        check_same_tree(whole_before, snapshot(root));
    }
    return result;
}

// A source tree of regular files and directories, each with its own fixed mtime.
void make_timed_source(const fs::path& src) {
    fs::create_directories(src / "sub" / "deeper");
    fs::create_directories(src / "other");
    put_file(src / "a.c", "int main() { return 0; }\n");
    put_file(src / "b.h", "#define B 1\n");
    put_file(src / "sub" / "c.c", "int c;\n");
    put_file(src / "sub" / "deeper" / "d.h", "#define D 4\n");
    put_file(src / "other" / "e.bin", random_bytes(5, 65536));
    set_mtime(src / "a.c", at(1500000001, 111111111));
    set_mtime(src / "b.h", at(1500000002, 222222222));
    set_mtime(src / "sub/c.c", at(1500000003, 333333333));
    set_mtime(src / "sub/deeper/d.h", at(1500000004, 444444444));
    set_mtime(src / "other/e.bin", at(1500000005, 555555555));
    set_mtime(src / "sub/deeper", at(1500000006, 666666666));
    set_mtime(src / "sub", at(1500000007, 777777777));
    set_mtime(src / "other", at(1500000008, 888888888));
    set_mtime(src, at(1500000009, 999999999));
}

// A copy of `from` at `to` as a fresh checkout makes it: same bytes, mtimes of now.
void copy_fresh(const fs::path& from, const fs::path& to) {
    auto copied = sh("cp -r " + quoted(from) + " " + quoted(to));
    if (copied.status != 0) {
        throw std::runtime_error("cp -r failed: " + copied.err);
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The merged view.

TEST_CASE(
    "Overlay: lower files, directories and symlinks show through with their bytes and "
    "attributes",
    "[fuse]") {
    Overlay o;
    CHECK(read_path(o / "hello.txt") == "hello lower\n");
    CHECK(read_path(o / "dir/sub/c.txt") == "c\n");
    CHECK(read_path(o / "big.bin") == random_bytes(1, 1 << 20));
    CHECK(readlink_of(o / "link") == "hello.txt");
    CHECK(read_path(o / "link") == "hello lower\n");
    CHECK(readlink_of(o / "dangling") == "nowhere");
    CHECK(stat_outcome(o / "missing") == "ENOENT");
    CHECK(names_in(o.root()) == names_in(o.source));
    CHECK(names_in(o / "dir") == Names{"a.txt", "b.txt", "sub"});
    CHECK(names_in(o / "empty-dir").empty());

    // Type, mode, owner, link count, size, bytes and mtime as DIR has them (the first mount
    // shows real mtimes). The root is the volume's own directory, so it is left out.
    check_same_tree(without_root(o.source_before), without_root(snapshot(o.root())));

    // Every entry is on the mount's device, with its own inode number.
    const dev_t device = stat_of(o.root()).st_dev;
    std::set<ino_t> inodes{stat_of(o.root()).st_ino};
    std::size_t entries = 1;
    for (const auto& entry : fs::recursive_directory_iterator(o.root())) {
        INFO("path: " << entry.path());
        auto st = lstat_of(entry.path());
        CHECK(st.st_dev == device);
        inodes.insert(st.st_ino);
        ++entries;
    }
    CHECK(inodes.size() == entries);
    CHECK(stat_of(o / "link").st_ino == stat_of(o / "hello.txt").st_ino);

    // A lower program runs from the mount.
    auto ran = run({(o / "script.sh").string()});
    CHECK(ran.status == 0);
    CHECK(ran.out == "lower script\n");

    // A file made through the mount shows next to the lower ones, and only in the mount.
    put_file(o / "new.txt", "upper\n");
    put_file(o / "dir" / "new-in-dir.txt", "upper in dir\n");
    CHECK(read_path(o / "new.txt") == "upper\n");
    CHECK(names_in(o / "dir") == Names{"a.txt", "b.txt", "sub", "new-in-dir.txt"});
    CHECK(read_path(o / "dir/a.txt") == "a\n");
    o.finish();
}

TEST_CASE(
    "Overlay: a merged directory's link count counts the subdirectories of both layers, as "
    "ext4 counts a directory's own",
    "[fuse]") {
    Overlay o;
    // The root merges the volume's root with DIR, whose subdirectories are dir and empty-dir.
    CHECK(stat_of(o.root()).st_nlink == 4);
    // A change inside copies dir up into the volume; its lower sub still counts.
    put_file(o / "dir/new.txt", "new\n");
    CHECK(stat_of(o / "dir").st_nlink == 3);
    make_dir(o / "dir/made");
    CHECK(stat_of(o / "dir").st_nlink == 4);
    // A lower directory removed (a whiteout now) counts no more; a new one does.
    REQUIRE(::rmdir((o / "empty-dir").c_str()) == 0);
    CHECK(stat_of(o.root()).st_nlink == 3);
    make_dir(o / "top");
    CHECK(stat_of(o.root()).st_nlink == 4);
    // And so from the store, with nothing in the kernel's caches.
    o.mount->remount();
    CHECK(stat_of(o.root()).st_nlink == 4);
    CHECK(stat_of(o / "dir").st_nlink == 4);
    o.finish();
}
TEST_CASE(
    "Overlay: a name in both layers shows the upper entry, and a directory in both shows "
    "the entries of both",
    "[fuse]") {
    TempDir tmp;
    make_lower(tmp / "src");
    {
        // The volume alone: an upper hello.txt and an upper dir with one file of its own.
        Mount plain(tmp / "store", tmp / "mnt");
        put_file(plain / "hello.txt", "hello upper\n");
        make_dir(plain / "dir");
        put_file(plain / "dir" / "a.txt", "upper a\n");
        put_file(plain / "dir" / "only-upper.txt", "only upper\n");
    }
    Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src").string()});
    CHECK(read_path(m / "hello.txt") == "hello upper\n");
    CHECK(stat_of(m / "hello.txt").st_size == 12);
    CHECK(read_path(m / "dir/a.txt") == "upper a\n");
    CHECK(read_path(m / "dir/b.txt") == "b\n");
    CHECK(read_path(m / "dir/sub/c.txt") == "c\n");
    CHECK(read_path(m / "dir/only-upper.txt") == "only upper\n");
    auto counts = readdir_counts(m / "dir");
    CHECK(counts ==
          std::map<std::string, int>{
              {".", 1}, {"..", 1}, {"a.txt", 1}, {"b.txt", 1}, {"sub", 1}, {"only-upper.txt", 1}});
    auto root_counts = readdir_counts(m.path());
    CHECK(root_counts["hello.txt"] == 1);
    CHECK(root_counts["dir"] == 1);
    CHECK(read_path(tmp / "src" / "hello.txt") == "hello lower\n");
}

TEST_CASE(
    "Overlay: a file added to the source after a copy-up in its directory shows on the "
    "next mount",
    "[fuse]") {
    Overlay o;
    REQUIRE(::chmod((o / "dir/a.txt").c_str(), 0600) == 0);  // dir now exists in both layers
    o.mount->unmount();
    put_file(o.source / "dir" / "added-later.txt", "added later\n");
    make_dir(o.source / "dir" / "added-dir");
    put_file(o.source / "dir" / "added-dir" / "x", "x\n");
    o.mount->mount();
    CHECK(names_in(o / "dir") == Names{"a.txt", "b.txt", "sub", "added-later.txt", "added-dir"});
    CHECK(read_path(o / "dir/added-later.txt") == "added later\n");
    CHECK(read_path(o / "dir/added-dir/x") == "x\n");
    CHECK(permissions(stat_of(o / "dir/a.txt")) == 0600u);
}

TEST_CASE(
    "Overlay: reading lower files puts nothing in the object pool; a copied-up file's "
    "bytes go there",
    "[fuse]") {
    Overlay o;
    snapshot(o.root());  // reads every lower file through the mount
    {
        auto fd = open_fd(o / "dir/b.txt", O_WRONLY | O_APPEND);
        write_all(fd.get(), "changed\n");
    }
    o.finish();
    std::set<std::string> objects;
    for (const auto& entry : fs::recursive_directory_iterator(o.store() / "objects")) {
        if (entry.is_regular_file()) {
            objects.insert(entry.path().parent_path().filename().string() +
                           entry.path().filename().string());
        }
    }
    for (const auto& [path, content] :
         std::map<std::string, std::string>{{"hello.txt", "hello lower\n"},
                                            {"big.bin", random_bytes(1, 1 << 20)},
                                            {"dir/sub/c.txt", "c\n"}}) {
        INFO("lower file " << path);
        CHECK(objects.count(ObjectId::of(content).hex()) == 0);
    }
    CHECK(objects.count(ObjectId::of(std::string("b\nchanged\n")).hex()) == 1);
}

TEST_CASE("Overlay: two volumes over one source keep separate upper layers", "[fuse]") {
    TempDir tmp;
    make_lower(tmp / "src");
    const auto src = (tmp / "src").string();
    Mount a(tmp / "store", tmp / "a", {"--volume", "a", "--source", src});
    Mount b(tmp / "store", tmp / "b", {"--volume", "b", "--source", src});
    put_file(a / "hello.txt", "from a\n");
    REQUIRE(::unlink((b / "dir/a.txt").c_str()) == 0);
    CHECK(read_path(a / "hello.txt") == "from a\n");
    CHECK(read_path(b / "hello.txt") == "hello lower\n");
    CHECK(read_path(a / "dir/a.txt") == "a\n");
    CHECK(stat_outcome(b / "dir/a.txt") == "ENOENT");
    a.remount();
    b.remount();
    CHECK(read_path(a / "hello.txt") == "from a\n");
    CHECK(read_path(b / "hello.txt") == "hello lower\n");
    CHECK(read_path(a / "dir/a.txt") == "a\n");
    CHECK(stat_outcome(b / "dir/a.txt") == "ENOENT");
    CHECK(read_path(tmp / "src" / "hello.txt") == "hello lower\n");
}

TEST_CASE("Overlay: fbfs run --source runs the command over the merged tree", "[fuse]") {
    TempDir tmp;
    make_lower(tmp / "src");
    const auto mnt = fs::weakly_canonical(tmp.path()) / "mnt";
    fs::create_directories(mnt);
    MountpointGuard guard(mnt);
    auto result = run_cli({"run", "--store", (tmp / "store").string(), "--source",
                           (tmp / "src").string(), mnt.string(), "--", "sh", "-c",
                           "cat hello.txt dir/a.txt && echo made > made.txt && rm script.sh"});
    INFO("stderr: " << result.err);
    CHECK(result.status == 0);
    CHECK(result.out == "hello lower\na\n");
    CHECK_FALSE(is_fuse_mounted(mnt));
    CHECK(fs::exists(tmp / "src" / "script.sh"));
    Mount m(tmp / "store", mnt, {"--source", (tmp / "src").string()});
    CHECK(read_path(m / "made.txt") == "made\n");
    CHECK(stat_outcome(m / "script.sh") == "ENOENT");
}

TEST_CASE(
    "Overlay: make finds a build up to date over a fresh copy of the source, and rebuilds "
    "only what a changed file feeds",
    "[fuse]") {
    TempDir tmp;
    auto src = tmp / "src";
    fs::create_directories(src);
    put_file(src / "Makefile",
             "all: out/a.o out/b.o\n"
             "out/%.o: %.c | out\n"
             "\tcc -c $< -o $@\n"
             "out:\n"
             "\tmkdir -p out\n");
    put_file(src / "a.c", "int a(void) { return 1; }\n");
    put_file(src / "b.c", "int b(void) { return 2; }\n");
    auto make = [&](const fs::path& mountpoint) {
        RunOptions options;
        options.cwd = mountpoint.string();
        auto result = run({"make", "--no-print-directory"}, options);
        INFO("make stderr: " << result.err);
        CHECK(result.status == 0);
        return result.out;
    };
    {
        Mount m(tmp / "store", tmp / "mnt", {"--source", src.string()});
        auto built = make(m.path());
        CHECK_THAT(built, Catch::Contains("a.c") && Catch::Contains("b.c"));
        REQUIRE(fs::exists(m / "out/a.o"));
    }
    // A fresh checkout of the same commit: every mtime is newer than the objects.
    copy_fresh(src, tmp / "src2");
    {
        Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src2").string()});
        auto again = make(m.path());
        CHECK_THAT(again, Catch::Contains("Nothing to be done"));
        CHECK_THAT(again, !Catch::Contains("cc "));
    }
    // The next commit changes b.c only.
    copy_fresh(src, tmp / "src3");
    put_file(tmp / "src3" / "b.c", "int b(void) { return 3; }\n");
    Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src3").string()});
    auto rebuilt = make(m.path());
    CHECK_THAT(rebuilt, Catch::Contains("b.c") && !Catch::Contains("a.c"));
}

// ---------------------------------------------------------------------------------------------
// Copy-up: every change to a lower file lands in the volume, never in DIR.

TEST_CASE("Overlay: appending to or writing into a lower file copies it up whole", "[fuse]") {
    Overlay o;
    const double before_write = seconds_now();
    {
        auto fd = open_fd(o / "hello.txt", O_WRONLY | O_APPEND);
        write_all(fd.get(), "more\n");
    }
    CHECK(read_path(o / "hello.txt") == "hello lower\nmore\n");
    auto st = stat_of(o / "hello.txt");
    CHECK(st.st_size == 17);
    CHECK(permissions(st) == 0644u);
    CHECK(seconds(st.st_mtim) >= before_write - 1);  // make sees it as changed

    // A write in the middle keeps every other byte of the lower file, and the descriptor that
    // wrote reads its own write back.
    auto expected = random_bytes(1, 1 << 20);
    expected.replace(500000, 4, "XYZW");
    {
        auto fd = open_fd(o / "big.bin", O_RDWR);
        pwrite_all(fd.get(), "XYZW", 500000);
        CHECK(pread_all(fd.get()) == expected);
    }
    CHECK(read_path(o / "big.bin") == expected);
    CHECK(stat_of(o / "big.bin").st_size == 1 << 20);

    // A file in a lower subdirectory: its directories are made in the volume on the way.
    {
        auto fd = open_fd(o / "dir/sub/c.txt", O_WRONLY | O_APPEND);
        write_all(fd.get(), "c2\n");
    }
    CHECK(read_path(o / "dir/sub/c.txt") == "c\nc2\n");
    CHECK(names_in(o / "dir/sub") == Names{"c.txt"});
    CHECK(names_in(o / "dir") == Names{"a.txt", "b.txt", "sub"});

    o.mount->remount();
    CHECK(read_path(o / "hello.txt") == "hello lower\nmore\n");
    CHECK(read_path(o / "big.bin") == expected);
    CHECK(read_path(o / "dir/sub/c.txt") == "c\nc2\n");
    o.finish();
}

TEST_CASE("Overlay: opening a lower file with O_TRUNC copies it up empty", "[fuse]") {
    Overlay o;
    put_file(o / "hello.txt", "replaced\n");
    CHECK(read_path(o / "hello.txt") == "replaced\n");
    CHECK(stat_of(o / "hello.txt").st_size == 9);
    REQUIRE(open_outcome(o / "dir/a.txt", O_WRONLY | O_TRUNC) == "ok");
    CHECK(stat_of(o / "dir/a.txt").st_size == 0);
    CHECK(read_path(o / "dir/a.txt").empty());
    CHECK(read_path(o / "dir/b.txt") == "b\n");
    o.mount->remount();
    CHECK(read_path(o / "hello.txt") == "replaced\n");
    CHECK(stat_of(o / "dir/a.txt").st_size == 0);
    o.finish();
}

TEST_CASE("Overlay: truncating a lower file copies it up with the new size", "[fuse]") {
    Overlay o;
    REQUIRE(::truncate((o / "hello.txt").c_str(), 5) == 0);
    CHECK(read_path(o / "hello.txt") == "hello");
    REQUIRE(::truncate((o / "dir/b.txt").c_str(), 10) == 0);
    CHECK(read_path(o / "dir/b.txt") == std::string("b\n") + std::string(8, '\0'));
    {
        auto fd = open_fd(o / "dir/a.txt", O_WRONLY);
        REQUIRE(::ftruncate(fd.get(), 1) == 0);
    }
    CHECK(read_path(o / "dir/a.txt") == "a");
    o.mount->remount();
    CHECK(read_path(o / "hello.txt") == "hello");
    CHECK(stat_of(o / "dir/b.txt").st_size == 10);
    CHECK(read_path(o / "dir/a.txt") == "a");
    o.finish();
}

TEST_CASE("Overlay: chmod of a lower file copies it up with its bytes and mtime", "[fuse]") {
    Overlay o;
    const auto mtime = mtime_of(o / "hello.txt");
    const auto dir_before = lstat_of(o / "dir");
    const auto sub_before = lstat_of(o / "dir/sub");
    REQUIRE(::chmod((o / "hello.txt").c_str(), 0600) == 0);
    REQUIRE(::chmod((o / "dir/sub/c.txt").c_str(), 0700) == 0);
    REQUIRE(::chmod((o / "read-only.txt").c_str(), 0644) == 0);
    CHECK(permissions(stat_of(o / "hello.txt")) == 0600u);
    CHECK(permissions(stat_of(o / "dir/sub/c.txt")) == 0700u);
    CHECK(read_path(o / "hello.txt") == "hello lower\n");
    CHECK(read_path(o / "dir/sub/c.txt") == "c\n");
    CHECK(mtime_of(o / "hello.txt") == mtime);
    // The now writable copy takes a write; DIR's file stays read-only and unchanged.
    put_file(o / "read-only.txt", "writable now\n");
    CHECK(read_path(o / "read-only.txt") == "writable now\n");
    // The directories made on the way keep the lower ones' mode and mtime.
    CHECK(permissions(lstat_of(o / "dir")) == permissions(dir_before));
    CHECK(permissions(lstat_of(o / "dir/sub")) == permissions(sub_before));
    CHECK(mtime_of(o / "dir") == time_text(dir_before.st_mtim));
    CHECK(mtime_of(o / "dir/sub") == time_text(sub_before.st_mtim));
    o.mount->remount();
    CHECK(permissions(stat_of(o / "hello.txt")) == 0600u);
    CHECK(mtime_of(o / "hello.txt") == mtime);
    CHECK(permissions(stat_of(o / "dir/sub/c.txt")) == 0700u);
    o.finish();
}

TEST_CASE("Overlay: a source on another filesystem than the store copies up", "[fuse]") {
    fbfs::test::require_root();
    // The kernel copies between files of one filesystem only (copy_file_range gives EXDEV
    // otherwise), and a CI checkout and the store are often on different ones.
    TempDir tmp;
    const auto source = tmp / "src";
    fs::create_directories(source);
    struct Tmpfs {
        fs::path at;
        ~Tmpfs() { fbfs::test::run({"umount", "-l", at.string()}); }
    } tmpfs{source};
    REQUIRE(fbfs::test::run({"mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", source.string()})
                .status == 0);
    put_file(source / "a.txt", "lower\n");
    {
        Mount m(tmp / "store", tmp / "mnt", {"--source", source.string()});
        auto fd = open_fd(m / "a.txt", O_WRONLY | O_APPEND);
        write_all(fd.get(), "upper\n");
        fd.reset();
        CHECK(read_path(m / "a.txt") == "lower\nupper\n");
        m.remount();
        CHECK(read_path(m / "a.txt") == "lower\nupper\n");
    }
    CHECK(read_path(source / "a.txt") == "lower\n");
}

TEST_CASE("Overlay: chown of a lower file or symlink copies it up with the new owner", "[fuse]") {
    fbfs::test::require_root();
    Overlay o;
    const auto mtime = mtime_of(o / "hello.txt");
    REQUIRE(::chown((o / "hello.txt").c_str(), 1234, 5678) == 0);
    REQUIRE(::lchown((o / "link").c_str(), 4321, 8765) == 0);
    auto st = stat_of(o / "hello.txt");
    CHECK(st.st_uid == 1234u);
    CHECK(st.st_gid == 5678u);
    CHECK(read_path(o / "hello.txt") == "hello lower\n");
    CHECK(mtime_of(o / "hello.txt") == mtime);
    auto link = lstat_of(o / "link");
    CHECK(link.st_uid == 4321u);
    CHECK(link.st_gid == 8765u);
    CHECK(readlink_of(o / "link") == "hello.txt");
    o.mount->remount();
    CHECK(stat_of(o / "hello.txt").st_uid == 1234u);
    CHECK(lstat_of(o / "link").st_uid == 4321u);
    o.finish();
}

TEST_CASE("Overlay: utimensat on a lower file copies it up with exactly those times", "[fuse]") {
    Overlay o;
    set_times(o / "hello.txt", at(1000000001, 2), at(1000000003, 4));
    set_times(o / "link", at(1000000005, 6), at(1000000007, 8), AT_SYMLINK_NOFOLLOW);
    auto st = lstat_of(o / "hello.txt");
    CHECK(time_text(st.st_atim) == "1000000001.000000002");
    CHECK(time_text(st.st_mtim) == "1000000003.000000004");
    CHECK(read_path(o / "hello.txt") == "hello lower\n");
    CHECK(mtime_of(o / "link") == "1000000007.000000008");
    CHECK(readlink_of(o / "link") == "hello.txt");
    // The times set through the mount are upper times: a remount keeps them, not DIR's.
    o.mount->remount();
    CHECK(mtime_of(o / "hello.txt") == "1000000003.000000004");
    CHECK(mtime_of(o / "link") == "1000000007.000000008");
    o.finish();
}

TEST_CASE("Overlay: a hard link to a lower file shares its inode, bytes and link count", "[fuse]") {
    Overlay o;
    REQUIRE(::link((o / "hello.txt").c_str(), (o / "hello-link").c_str()) == 0);
    REQUIRE(::link((o / "dir/a.txt").c_str(), (o / "dir/sub/a-link").c_str()) == 0);
    auto check_linked = [&](const std::string& first, const std::string& second) {
        INFO(first << " and " << second);
        auto a = stat_of(o / first);
        auto b = stat_of(o / second);
        CHECK(a.st_ino == b.st_ino);
        CHECK(a.st_nlink == 2u);
        CHECK(b.st_nlink == 2u);
        CHECK(read_path(o / first) == read_path(o / second));
    };
    check_linked("hello.txt", "hello-link");
    check_linked("dir/a.txt", "dir/sub/a-link");
    CHECK(read_path(o / "hello-link") == "hello lower\n");

    // A write through one name shows through the other.
    {
        auto fd = open_fd(o / "hello-link", O_WRONLY | O_APPEND);
        write_all(fd.get(), "via link\n");
    }
    CHECK(read_path(o / "hello.txt") == "hello lower\nvia link\n");

    o.mount->remount();
    check_linked("hello.txt", "hello-link");
    check_linked("dir/a.txt", "dir/sub/a-link");

    // Unlinking one name leaves the other with one link, and the lower file does not come back
    // under the removed name.
    REQUIRE(::unlink((o / "hello.txt").c_str()) == 0);
    CHECK(stat_outcome(o / "hello.txt") == "ENOENT");
    CHECK(stat_of(o / "hello-link").st_nlink == 1u);
    CHECK(read_path(o / "hello-link") == "hello lower\nvia link\n");
    o.mount->remount();
    CHECK(stat_outcome(o / "hello.txt") == "ENOENT");
    CHECK(read_path(o / "hello-link") == "hello lower\nvia link\n");
    o.finish();
}

TEST_CASE("Overlay: bytes written through a shared mapping of a lower file go to its copy",
          "[fuse]") {
    Overlay o;
    {
        auto fd = open_fd(o / "hello.txt", O_RDWR);
        void* map = ::mmap(nullptr, 12, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
        REQUIRE(map != MAP_FAILED);
        std::memcpy(map, "HELLO", 5);
        CHECK(::msync(map, 12, MS_SYNC) == 0);
        ::munmap(map, 12);
    }
    CHECK(read_path(o / "hello.txt") == "HELLO lower\n");
    o.mount->remount();
    CHECK(read_path(o / "hello.txt") == "HELLO lower\n");
    o.finish();
}

TEST_CASE("Overlay: concurrent first writes to lower files copy each up once with every write",
          "[fuse]") {
    constexpr int k_threads = 8;
    constexpr int k_files = 40;
    Overlay o([](const fs::path& src) {
        make_lower(src);
        fs::create_directories(src / "gen");
        for (int f = 0; f < k_files; ++f) {
            put_file(src / "gen" / ("f" + std::to_string(f)), "lower " + std::to_string(f) + "\n");
        }
    });
    // Every thread appends one line to every file, all starting at once: the copy-up of each
    // file races with the other threads' writes and chmods.
    std::vector<std::string> errors(k_threads);
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < k_threads; ++t) {
            threads.emplace_back([&, t] {
                try {
                    for (int f = 0; f < k_files; ++f) {
                        auto path = o / ("gen/f" + std::to_string(f));
                        if (t == 0) {
                            if (::chmod(path.c_str(), 0664) != 0) {
                                throw sys_error("chmod " + path.string());
                            }
                        }
                        auto fd = open_fd(path, O_WRONLY | O_APPEND);
                        write_all(fd.get(), "thread " + std::to_string(t) + "\n");
                    }
                } catch (const std::exception& e) {
                    errors[static_cast<std::size_t>(t)] = e.what();
                }
            });
        }
    }
    CHECK(errors == std::vector<std::string>(k_threads));
    auto check_files = [&] {
        for (int f = 0; f < k_files; ++f) {
            auto path = o / ("gen/f" + std::to_string(f));
            INFO("file: " << path);
            auto content = read_path(path);
            CHECK(content.starts_with("lower " + std::to_string(f) + "\n"));
            for (int t = 0; t < k_threads; ++t) {
                CHECK(content.find("thread " + std::to_string(t) + "\n") != std::string::npos);
            }
            CHECK(std::count(content.begin(), content.end(), '\n') == k_threads + 1);
            CHECK(permissions(stat_of(path)) == 0664u);
        }
    };
    check_files();
    CHECK(names_in(o / "gen").size() == static_cast<std::size_t>(k_files));
    o.mount->remount();
    check_files();
    o.finish();
}

TEST_CASE("Overlay: lower names with spaces, UTF-8, 255 bytes, and deep paths work like any other",
          "[fuse]") {
    const std::string long_name(255, 'n');
    const std::string deep = "d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12";
    Overlay o([&](const fs::path& src) {
        make_lower(src);
        fs::create_directories(src / "odd names");
        put_file(src / "odd names" / "with space.txt", "space\n");
        put_file(src / "odd names" / "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93.txt", "utf8\n");
        put_file(src / "odd names" / long_name, "long\n");
        put_file(src / "odd names" / "-leading-dash", "dash\n");
        fs::create_directories(src / deep);
        put_file(src / deep / "leaf.txt", "leaf\n");
    });
    const auto odd = o / "odd names";
    CHECK(names_in(odd) == Names{"with space.txt", "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93.txt", long_name,
                                 "-leading-dash"});
    CHECK(read_path(odd / long_name) == "long\n");
    // Copy-up, whiteout and rename of each.
    {
        auto fd = open_fd(odd / "with space.txt", O_WRONLY | O_APPEND);
        write_all(fd.get(), "more\n");
    }
    REQUIRE(::unlink((odd / "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93.txt").c_str()) == 0);
    REQUIRE(rename_outcome(odd / long_name, odd / (std::string(254, 'm') + "x")) == "ok");
    REQUIRE(::chmod((o / (deep + "/leaf.txt")).c_str(), 0600) == 0);
    put_file(o / (deep + "/leaf2.txt"), "leaf2\n");
    auto check_view = [&] {
        CHECK(names_in(odd) ==
              Names{"with space.txt", std::string(254, 'm') + "x", "-leading-dash"});
        CHECK(read_path(odd / "with space.txt") == "space\nmore\n");
        CHECK(read_path(odd / (std::string(254, 'm') + "x")) == "long\n");
        CHECK(stat_outcome(odd / long_name) == "ENOENT");
        CHECK(permissions(stat_of(o / (deep + "/leaf.txt"))) == 0600u);
        CHECK(read_path(o / (deep + "/leaf.txt")) == "leaf\n");
        CHECK(names_in(o / deep) == Names{"leaf.txt", "leaf2.txt"});
    };
    check_view();
    o.mount->remount();
    check_view();
    o.finish();
}

TEST_CASE(
    "Overlay: a source that changed between mounts shows its new tree under the kept "
    "upper changes",
    "[fuse]") {
    Overlay o;
    REQUIRE(::chmod((o / "dir/a.txt").c_str(), 0600) == 0);
    REQUIRE(::unlink((o / "script.sh").c_str()) == 0);
    put_file(o / "new.txt", "new\n");
    o.finish();

    // The next commit's checkout: files gone, added, and changed type.
    fs::remove(o.source / "dir" / "b.txt");
    fs::remove(o.source / "script.sh");
    put_file(o.source / "dir" / "c-new.txt", "c new\n");
    fs::remove(o.source / "empty-dir");
    put_file(o.source / "empty-dir", "a file now\n");
    fs::remove(o.source / "big.bin");
    fs::create_directories(o.source / "big.bin");
    put_file(o.source / "big.bin" / "inner", "inner\n");
    fs::remove_all(o.source / "dir" / "sub");
    put_file(o.source / "dir" / "sub", "sub is a file now\n");

    o.mount->mount();
    CHECK(names_in(o / "dir") == Names{"a.txt", "c-new.txt", "sub"});
    CHECK(permissions(stat_of(o / "dir/a.txt")) == 0600u);
    CHECK(read_path(o / "dir/c-new.txt") == "c new\n");
    CHECK(read_path(o / "dir/sub") == "sub is a file now\n");
    CHECK(read_path(o / "empty-dir") == "a file now\n");
    CHECK(S_ISDIR(lstat_of(o / "big.bin").st_mode));
    CHECK(read_path(o / "big.bin/inner") == "inner\n");
    CHECK(stat_outcome(o / "script.sh") == "ENOENT");
    CHECK(read_path(o / "new.txt") == "new\n");
    CHECK(names_in(o.root()) == Names{"hello.txt", "read-only.txt", "big.bin", "dir", "empty-dir",
                                      "link", "dangling", "new.txt"});
    // Changes still work on the new tree.
    put_file(o / "big.bin/inner", "changed\n");
    CHECK(read_path(o / "big.bin/inner") == "changed\n");
    o.mount->remount();
    CHECK(read_path(o / "big.bin/inner") == "changed\n");
    CHECK(read_path(o.source / "big.bin" / "inner") == "inner\n");
    o.mount->unmount();
}

// ---------------------------------------------------------------------------------------------
// Whiteouts and opaque directories.

TEST_CASE(
    "Overlay: unlinking a lower file hides it, and a new file of that name shows its own "
    "bytes",
    "[fuse]") {
    Overlay o;
    REQUIRE(::unlink((o / "hello.txt").c_str()) == 0);
    CHECK(stat_outcome(o / "hello.txt") == "ENOENT");
    CHECK(open_outcome(o / "hello.txt", O_RDONLY) == "ENOENT");
    CHECK(names_in(o.root()).count("hello.txt") == 0);
    CHECK(outcome(::unlink((o / "hello.txt").c_str())) == "ENOENT");
    CHECK(outcome(::access((o / "link").c_str(), F_OK)) == "ENOENT");  // now dangles
    REQUIRE(::unlink((o / "link").c_str()) == 0);
    CHECK(stat_outcome(o / "link") == "ENOENT");
    REQUIRE(::unlink((o / "dir/sub/c.txt").c_str()) == 0);
    CHECK(names_in(o / "dir/sub").empty());

    // O_EXCL succeeds: the name is free.
    {
        auto fd = open_fd(o / "hello.txt", O_WRONLY | O_CREAT | O_EXCL, 0600);
        write_all(fd.get(), "new");
    }
    CHECK(read_path(o / "hello.txt") == "new");
    CHECK(stat_of(o / "hello.txt").st_size == 3);
    CHECK(permissions(stat_of(o / "hello.txt")) == 0600u);

    o.mount->remount();
    CHECK(read_path(o / "hello.txt") == "new");
    CHECK(stat_outcome(o / "link") == "ENOENT");
    CHECK(stat_outcome(o / "dir/sub/c.txt") == "ENOENT");
    CHECK(names_in(o.root()).count("link") == 0);

    // Removing the new file leaves the name free again: DIR's file does not come back.
    REQUIRE(::unlink((o / "hello.txt").c_str()) == 0);
    CHECK(stat_outcome(o / "hello.txt") == "ENOENT");
    o.mount->remount();
    CHECK(stat_outcome(o / "hello.txt") == "ENOENT");
    CHECK(names_in(o.root()).count("hello.txt") == 0);
    o.finish();
}

TEST_CASE("Overlay: rmdir removes a lower directory that is empty in the merged view", "[fuse]") {
    Overlay o;
    REQUIRE(outcome(::rmdir((o / "empty-dir").c_str())) == "ok");
    CHECK(stat_outcome(o / "empty-dir") == "ENOENT");
    CHECK(names_in(o.root()).count("empty-dir") == 0);
    CHECK(outcome(::rmdir((o / "empty-dir").c_str())) == "ENOENT");

    // A lower directory with lower entries is not empty ...
    CHECK(outcome(::rmdir((o / "dir/sub").c_str())) == "ENOTEMPTY");
    CHECK(outcome(::rmdir((o / "dir").c_str())) == "ENOTEMPTY");
    // ... until those are removed through the mount.
    REQUIRE(::unlink((o / "dir/sub/c.txt").c_str()) == 0);
    CHECK(outcome(::rmdir((o / "dir/sub").c_str())) == "ok");
    CHECK(stat_outcome(o / "dir/sub") == "ENOENT");
    CHECK(names_in(o / "dir") == Names{"a.txt", "b.txt"});

    o.mount->remount();
    CHECK(stat_outcome(o / "empty-dir") == "ENOENT");
    CHECK(stat_outcome(o / "dir/sub") == "ENOENT");
    // A new directory of the old name is empty.
    make_dir(o / "empty-dir");
    CHECK(names_in(o / "empty-dir").empty());
    o.finish();
}

TEST_CASE("Overlay: rm -rf of a lower tree removes it from the mount and leaves the source whole",
          "[fuse]") {
    Overlay o;
    check_sh("rm -rf " + quoted(o / "dir"));
    CHECK(stat_outcome(o / "dir") == "ENOENT");
    CHECK(names_in(o.root()).count("dir") == 0);
    o.mount->remount();
    CHECK(stat_outcome(o / "dir") == "ENOENT");
    CHECK(stat_outcome(o / "dir/sub/c.txt") == "ENOENT");

    // Everything: the mount shows an empty tree.
    check_sh("cd " + quoted(o.root()) + " && rm -rf -- * .[!.]*");
    CHECK(names_in(o.root()).empty());
    o.mount->remount();
    CHECK(names_in(o.root()).empty());
    o.finish();
}

TEST_CASE("Overlay: a directory made where a lower one was removed starts empty", "[fuse]") {
    Overlay o;
    check_sh("rm -rf " + quoted(o / "dir"));
    make_dir(o / "dir");
    CHECK(names_in(o / "dir").empty());
    CHECK(stat_outcome(o / "dir/a.txt") == "ENOENT");
    CHECK(stat_outcome(o / "dir/sub") == "ENOENT");
    CHECK(stat_of(o / "dir").st_nlink == 2u);
    put_file(o / "dir" / "a.txt", "new a\n");
    CHECK(names_in(o / "dir") == Names{"a.txt"});
    CHECK(read_path(o / "dir/a.txt") == "new a\n");

    // A file's name reused for a directory, and a directory's for a file.
    REQUIRE(::unlink((o / "hello.txt").c_str()) == 0);
    make_dir(o / "hello.txt");
    CHECK(S_ISDIR(lstat_of(o / "hello.txt").st_mode));
    CHECK(names_in(o / "hello.txt").empty());
    REQUIRE(::rmdir((o / "empty-dir").c_str()) == 0);
    put_file(o / "empty-dir", "a file now\n");
    CHECK(S_ISREG(lstat_of(o / "empty-dir").st_mode));

    o.mount->remount();
    CHECK(names_in(o / "dir") == Names{"a.txt"});
    CHECK(stat_outcome(o / "dir/b.txt") == "ENOENT");
    CHECK(S_ISDIR(lstat_of(o / "hello.txt").st_mode));
    CHECK(names_in(o / "hello.txt").empty());
    CHECK(read_path(o / "empty-dir") == "a file now\n");
    o.finish();
}

TEST_CASE("Overlay: a directory renamed over a removed lower directory shows only its own entries",
          "[fuse]") {
    Overlay o;
    check_sh("rm -rf " + quoted(o / "dir"));
    make_dir(o / "fresh");
    put_file(o / "fresh" / "only.txt", "only\n");
    REQUIRE(rename_outcome(o / "fresh", o / "dir") == "ok");
    CHECK(names_in(o / "dir") == Names{"only.txt"});
    CHECK(stat_outcome(o / "dir/a.txt") == "ENOENT");
    o.mount->remount();
    CHECK(names_in(o / "dir") == Names{"only.txt"});
    CHECK(stat_outcome(o / "dir/a.txt") == "ENOENT");
    o.finish();
}

// ---------------------------------------------------------------------------------------------
// Renames.

TEST_CASE("Overlay: renaming a lower file moves its bytes and hides the old name", "[fuse]") {
    Overlay o;
    const auto hello_mtime = mtime_of(o / "hello.txt");
    REQUIRE(rename_outcome(o / "hello.txt", o / "renamed.txt") == "ok");
    CHECK(read_path(o / "renamed.txt") == "hello lower\n");
    CHECK(stat_outcome(o / "hello.txt") == "ENOENT");
    CHECK(mtime_of(o / "renamed.txt") == hello_mtime);
    CHECK(permissions(stat_of(o / "renamed.txt")) == 0644u);

    // Into another lower directory, into a new upper directory, and a big file.
    REQUIRE(rename_outcome(o / "dir/a.txt", o / "dir/sub/a-moved.txt") == "ok");
    make_dir(o / "updir");
    REQUIRE(rename_outcome(o / "dir/b.txt", o / "updir/b.txt") == "ok");
    REQUIRE(rename_outcome(o / "big.bin", o / "dir/sub/big.bin") == "ok");
    REQUIRE(rename_outcome(o / "link", o / "updir/link") == "ok");
    CHECK(names_in(o / "dir") == Names{"sub"});
    CHECK(names_in(o / "dir/sub") == Names{"c.txt", "a-moved.txt", "big.bin"});
    CHECK(names_in(o / "updir") == Names{"b.txt", "link"});
    CHECK(read_path(o / "dir/sub/a-moved.txt") == "a\n");
    CHECK(read_path(o / "updir/b.txt") == "b\n");
    CHECK(read_path(o / "dir/sub/big.bin") == random_bytes(1, 1 << 20));
    CHECK(readlink_of(o / "updir/link") == "hello.txt");

    const auto after = snapshot(o.root());
    o.mount->remount();
    check_same_tree(after, snapshot(o.root()));
    CHECK(stat_outcome(o / "hello.txt") == "ENOENT");
    CHECK(stat_outcome(o / "big.bin") == "ENOENT");
    o.finish();
}

TEST_CASE("Overlay: rename replaces a file across layers in either direction", "[fuse]") {
    Overlay o;
    // Upper over lower.
    put_file(o / "up.txt", "upper bytes\n");
    REQUIRE(rename_outcome(o / "up.txt", o / "hello.txt") == "ok");
    CHECK(read_path(o / "hello.txt") == "upper bytes\n");
    CHECK(stat_outcome(o / "up.txt") == "ENOENT");
    // Lower over upper.
    put_file(o / "up2.txt", "second upper\n");
    REQUIRE(rename_outcome(o / "dir/a.txt", o / "up2.txt") == "ok");
    CHECK(read_path(o / "up2.txt") == "a\n");
    CHECK(stat_outcome(o / "dir/a.txt") == "ENOENT");
    // Lower over lower.
    REQUIRE(rename_outcome(o / "dir/b.txt", o / "script.sh") == "ok");
    CHECK(read_path(o / "script.sh") == "b\n");
    CHECK(stat_outcome(o / "dir/b.txt") == "ENOENT");
    CHECK(names_in(o / "dir") == Names{"sub"});
    // RENAME_NOREPLACE sees lower names, and not whited-out ones.
    CHECK(outcome(rename2(o / "dir/sub/c.txt", o / "read-only.txt", RENAME_NOREPLACE)) == "EEXIST");
    REQUIRE(::unlink((o / "read-only.txt").c_str()) == 0);
    CHECK(outcome(rename2(o / "dir/sub/c.txt", o / "read-only.txt", RENAME_NOREPLACE)) == "ok");
    CHECK(read_path(o / "read-only.txt") == "c\n");

    const auto after = snapshot(o.root());
    CHECK(names_in(o.root()) == Names{"hello.txt", "up2.txt", "script.sh", "read-only.txt",
                                      "big.bin", "dir", "empty-dir", "link", "dangling"});
    o.mount->remount();
    check_same_tree(after, snapshot(o.root()));
    o.finish();
}

TEST_CASE(
    "Overlay: renaming a lower directory moves the whole tree or fails with EXDEV and "
    "changes nothing",
    "[fuse]") {
    Overlay o;
    // A directory only in DIR.
    auto pure = check_dir_rename(o.root(), "dir/sub", "sub-moved");
    // A directory in both layers (a copy-up made it in the volume), holding lower entries.
    REQUIRE(::chmod((o / "dir/a.txt").c_str(), 0600) == 0);
    auto merged = check_dir_rename(o.root(), "dir", "dir-moved");
    INFO("rename outcomes: lower-only " << pure << ", merged " << merged);

    // Whichever it was, mv (which copies on EXDEV) gets every entry across.
    const auto expected = without_root(snapshot(o / (merged == "ok" ? "dir-moved" : "dir")));
    check_sh("mv " + quoted(o / (merged == "ok" ? "dir-moved" : "dir")) + " " +
             quoted(o / "by-mv"));
    auto moved = without_root(snapshot(o / "by-mv"));
    check_same_tree(expected, moved);
    CHECK(stat_outcome(o / "dir") == "ENOENT");

    const auto after = snapshot(o.root());
    o.mount->remount();
    check_same_tree(after, snapshot(o.root()));
    o.finish();
}

// ---------------------------------------------------------------------------------------------
// Readdir.

TEST_CASE("Overlay: readdir lists each merged name exactly once and no whited-out name", "[fuse]") {
    constexpr int k_lower = 3000;
    auto name = [](const char* prefix, int i) {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%s%04d", prefix, i);
        return std::string(buffer);
    };
    Overlay o([&](const fs::path& src) {
        make_lower(src);
        fs::create_directories(src / "many");
        for (int i = 0; i < k_lower; ++i) {
            put_file(src / "many" / name("f", i), std::to_string(i));
        }
    });

    // The root: every kind of change once.
    REQUIRE(::unlink((o / "hello.txt").c_str()) == 0);
    check_sh("rm -rf " + quoted(o / "dir"));
    make_dir(o / "dir");
    put_file(o / "dir" / "x", "x");
    REQUIRE(::chmod((o / "script.sh").c_str(), 0700) == 0);
    REQUIRE(rename_outcome(o / "big.bin", o / "big2.bin") == "ok");
    put_file(o / "new.txt", "new");
    REQUIRE(::symlink("new.txt", (o / "new-link").c_str()) == 0);
    make_dir(o / "newdir");
    const Names root_expected{"read-only.txt", "script.sh", "link",  "dangling",
                              "empty-dir",     "many",      "dir",   "big2.bin",
                              "new.txt",       "new-link",  "newdir"};

    // A big lower directory, read in many readdir calls: whiteouts, copy-ups, renames and new
    // names all through it.
    Names many_expected;
    for (int i = 0; i < k_lower; ++i) {
        auto f = name("f", i);
        if (i % 7 == 0) {
            REQUIRE(::unlink((o / "many" / f).c_str()) == 0);
        } else if (i % 11 == 0) {
            REQUIRE(rename_outcome(o / "many" / f, o / "many" / name("h", i)) == "ok");
            many_expected.insert(name("h", i));
        } else {
            if (i % 5 == 0) {
                REQUIRE(::chmod((o / "many" / f).c_str(), 0600) == 0);
            }
            many_expected.insert(f);
        }
    }
    for (int i = 0; i < 600; ++i) {
        put_file(o / "many" / name("g", i), "g");
        many_expected.insert(name("g", i));
    }

    auto check_listing = [](const fs::path& dir, const Names& expected) {
        INFO("directory: " << dir);
        auto counts = readdir_counts(dir);
        CHECK(counts["."] == 1);
        CHECK(counts[".."] == 1);
        Names seen;
        std::vector<std::string> repeated;
        for (const auto& [entry, count] : counts) {
            if (entry != "." && entry != "..") {
                seen.insert(entry);
                if (count != 1) {
                    repeated.push_back(entry + " x" + std::to_string(count));
                }
            }
        }
        CHECK(repeated == std::vector<std::string>{});
        std::vector<std::string> missing, extra;
        std::set_difference(expected.begin(), expected.end(), seen.begin(), seen.end(),
                            std::back_inserter(missing));
        std::set_difference(seen.begin(), seen.end(), expected.begin(), expected.end(),
                            std::back_inserter(extra));
        CHECK(missing == std::vector<std::string>{});
        CHECK(extra == std::vector<std::string>{});
        // d_type, where given, is the entry's type (find and make rely on it).
        for (const auto& [entry, type] : readdir_types(dir)) {
            if (type == DT_UNKNOWN) {
                continue;
            }
            INFO("entry: " << entry);
            auto mode = lstat_of(dir / entry).st_mode;
            CHECK(static_cast<int>(type) == static_cast<int>(IFTODT(mode)));
        }
    };
    check_listing(o.root(), root_expected);
    check_listing(o / "many", many_expected);
    check_listing(o / "dir", Names{"x"});
    o.mount->remount();
    check_listing(o.root(), root_expected);
    check_listing(o / "many", many_expected);
    check_listing(o / "dir", Names{"x"});
    o.finish();
}

// ---------------------------------------------------------------------------------------------
// Persistence.

TEST_CASE(
    "Overlay: changes and whiteouts survive a remount, and the volume alone shows only the "
    "upper tree",
    "[fuse]") {
    Overlay o;
    {
        auto fd = open_fd(o / "hello.txt", O_WRONLY | O_APPEND);
        write_all(fd.get(), "appended\n");
    }
    REQUIRE(::chmod((o / "dir/a.txt").c_str(), 0600) == 0);
    put_file(o / "new.txt", "new\n");
    make_dir(o / "newdir");
    put_file(o / "newdir" / "f", "f\n");
    REQUIRE(::unlink((o / "script.sh").c_str()) == 0);
    REQUIRE(::rmdir((o / "empty-dir").c_str()) == 0);
    REQUIRE(rename_outcome(o / "big.bin", o / "moved.bin") == "ok");
    check_sh("rm -rf " + quoted(o / "dir/sub"));
    const auto after = snapshot(o.root());

    o.mount->remount();
    check_same_tree(after, snapshot(o.root()));
    o.mount->unmount();

    {
        Mount plain(o.store(), o.tmp / "plain");
        CHECK(names_in(plain.path()) ==
              Names{"hello.txt", "dir", "new.txt", "newdir", "moved.bin"});
        CHECK(names_in(plain / "dir") == Names{"a.txt"});
        CHECK(read_path(plain / "hello.txt") == "hello lower\nappended\n");
        CHECK(read_path(plain / "dir/a.txt") == "a\n");
        CHECK(permissions(stat_of(plain / "dir/a.txt")) == 0600u);
        CHECK(read_path(plain / "newdir/f") == "f\n");
        CHECK(read_path(plain / "moved.bin") == random_bytes(1, 1 << 20));
    }

    // With the source again: the plain mount changed nothing.
    o.mount->mount();
    check_same_tree(after, snapshot(o.root()));
    o.finish();
}

// ---------------------------------------------------------------------------------------------
// Content-stable mtimes.

TEST_CASE(
    "Overlay: an unchanged lower file shows the mtime it showed before, from a fresh copy "
    "of the source",
    "[fuse]") {
    TempDir tmp;
    make_timed_source(tmp / "src");
    Snapshot first;
    {
        Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src").string()});
        first = only(snapshot(m.path()), "file");
        REQUIRE(first.size() == 5u);
        check_same_tree(only(snapshot(tmp / "src"), "file"), first);
    }
    copy_fresh(tmp / "src", tmp / "src2");
    REQUIRE(mtime_of(tmp / "src2/a.c") != mtime_of(tmp / "src/a.c"));
    {
        Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src2").string()});
        CHECK(mtime_of(m / "a.c") == "1500000001.111111111");
        check_same_tree(first, only(snapshot(m.path()), "file"));
    }
    // And once more, after the second mount recorded what it showed.
    copy_fresh(tmp / "src", tmp / "src3");
    Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src3").string()});
    check_same_tree(first, only(snapshot(m.path()), "file"));
}

TEST_CASE(
    "Overlay: unchanged lower directories show the same mtimes from a fresh copy of the "
    "source",
    "[fuse]") {
    TempDir tmp;
    make_timed_source(tmp / "src");
    Snapshot first;
    {
        Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src").string()});
        first = without_root(only(snapshot(m.path()), "dir"));
        REQUIRE(first.size() == 3u);
    }
    copy_fresh(tmp / "src", tmp / "src2");
    Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src2").string()});
    check_same_tree(first, without_root(only(snapshot(m.path()), "dir")));
}

TEST_CASE(
    "Overlay: a lower file whose bytes changed shows its real mtime, and keeps it while its "
    "bytes stay the same",
    "[fuse]") {
    TempDir tmp;
    make_timed_source(tmp / "src");
    {
        Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src").string()});
        snapshot(m.path());
    }
    copy_fresh(tmp / "src", tmp / "src2");
    // Same size, different bytes; and a file that was not there before.
    put_file(tmp / "src2" / "b.h", "#define B 2\n");
    REQUIRE(fs::file_size(tmp / "src2" / "b.h") == fs::file_size(tmp / "src" / "b.h"));
    set_mtime(tmp / "src2" / "b.h", at(1700000000, 123456789));
    put_file(tmp / "src2" / "new.c", "int n;\n");
    set_mtime(tmp / "src2" / "new.c", at(1700000001, 987654321));
    {
        Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src2").string()});
        CHECK(read_path(m / "b.h") == "#define B 2\n");
        CHECK(mtime_of(m / "b.h") == "1700000000.123456789");
        CHECK(mtime_of(m / "new.c") == "1700000001.987654321");
        CHECK(mtime_of(m / "a.c") == "1500000001.111111111");
        CHECK(mtime_of(m / "sub/c.c") == "1500000003.333333333");
    }
    // A fresh copy of the changed tree: the new content keeps the mtime it was first shown with.
    copy_fresh(tmp / "src2", tmp / "src3");
    {
        Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src3").string()});
        CHECK(mtime_of(m / "b.h") == "1700000000.123456789");
        CHECK(mtime_of(m / "new.c") == "1700000001.987654321");
        CHECK(mtime_of(m / "a.c") == "1500000001.111111111");
    }
    // The old bytes again are a change from what was last shown: the real mtime.
    Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src").string()});
    CHECK(read_path(m / "b.h") == "#define B 1\n");
    CHECK(mtime_of(m / "b.h") == mtime_of(tmp / "src/b.h"));
    CHECK(mtime_of(m / "a.c") == "1500000001.111111111");
}

// ---------------------------------------------------------------------------------------------
// Bad input.

TEST_CASE("Overlay: a --source that does not exist is refused with one line naming it", "[fuse]") {
    TempDir tmp;
    fs::create_directories(tmp / "mnt");
    MountpointGuard guard(tmp / "mnt");
    auto missing = tmp / "missing";
    auto result = fbfs_mount(tmp / "store", tmp / "mnt", {"--source", missing.string()});
    check_refused(result, {missing.string()});
    CHECK_FALSE(is_fuse_mounted(tmp / "mnt"));
    CHECK_FALSE(fs::exists(missing));
    CHECK_FALSE(fs::exists(tmp / "store"));
}

TEST_CASE("Overlay: a --source that is a regular file is refused with one line naming it",
          "[fuse]") {
    TempDir tmp;
    fs::create_directories(tmp / "mnt");
    MountpointGuard guard(tmp / "mnt");
    auto file = tmp / "file";
    put_file(file, "not a directory\n");
    auto result = fbfs_mount(tmp / "store", tmp / "mnt", {"--source", file.string()});
    check_refused(result, {file.string()});
    CHECK_FALSE(is_fuse_mounted(tmp / "mnt"));
    CHECK(read_path(file) == "not a directory\n");
    CHECK_FALSE(fs::exists(tmp / "store"));
}

TEST_CASE("Overlay: a --source that is the mountpoint itself, however spelled, is refused",
          "[fuse]") {
    TempDir tmp;
    auto mnt = tmp / "mnt";
    fs::create_directories(mnt);
    fs::create_symlink(mnt, tmp / "mnt-link");
    MountpointGuard guard(mnt);
    for (const auto& spelled :
         {mnt.string(), mnt.string() + "/", mnt.string() + "/.", (tmp / "mnt-link").string(),
          (tmp / "mnt" / ".." / "mnt").string()}) {
        INFO("--source " << spelled);
        auto result = fbfs_mount(tmp / "store", mnt, {"--source", spelled});
        check_refused(result, {});
        // It names the source as given or as resolved.
        CHECK((result.err.find(spelled) != std::string::npos ||
               result.err.find(mnt.string()) != std::string::npos));
        CHECK_FALSE(is_fuse_mounted(mnt));
    }
}

TEST_CASE("Overlay: a --source inside the mountpoint is refused with one line naming it",
          "[fuse]") {
    TempDir tmp;
    auto mnt = tmp / "mnt";
    fs::create_directories(mnt / "src");
    put_file(mnt / "src" / "f", "f\n");
    MountpointGuard guard(mnt);
    auto result = fbfs_mount(tmp / "store", mnt, {"--source", (mnt / "src").string()});
    check_refused(result, {(mnt / "src").string()});
    CHECK_FALSE(is_fuse_mounted(mnt));
    CHECK(read_path(mnt / "src" / "f") == "f\n");
}

TEST_CASE("Overlay: a mountpoint inside the source is refused before anything mounts", "[fuse]") {
    TempDir tmp;
    auto src = tmp / "src";
    auto mnt = src / "mnt";
    fs::create_directories(mnt);
    put_file(src / "f", "f\n");
    MountpointGuard guard(mnt);
    // Mounted, the overlay would serve itself as its own lower "mnt"; fbfs refuses instead.
    auto result = fbfs_mount(tmp / "store", mnt, {"--source", src.string()});
    check_refused(result, {src.string(), "overlap"});
    CHECK_FALSE(is_fuse_mounted(mnt));
}

TEST_CASE("Overlay: a relative --source is taken from the directory fbfs mount runs in", "[fuse]") {
    TempDir tmp;
    make_lower(tmp / "src");
    fs::create_directories(tmp / "mnt");
    MountpointGuard guard(tmp / "mnt");
    RunOptions options;
    options.cwd = tmp.path().string();
    auto result = fbfs_mount(tmp / "store", tmp / "mnt", {"--source", "src"}, options);
    INFO("stderr: " << result.err);
    REQUIRE(result.status == 0);
    REQUIRE(is_fuse_mounted(tmp / "mnt"));
    CHECK(read_path(tmp / "mnt" / "hello.txt") == "hello lower\n");
    CHECK(read_path(tmp / "mnt" / "dir/sub/c.txt") == "c\n");
    CHECK(run_cli({"umount", (tmp / "mnt").string()}).status == 0);
}

// ---------------------------------------------------------------------------------------------
// A source that changes under the mount.

TEST_CASE(
    "Overlay: a lower file deleted from the source while mounted is reported missing and "
    "the mount keeps working",
    "[fuse]") {
    Overlay o;
    CHECK(read_path(o / "hello.txt") == "hello lower\n");
    CHECK(read_path(o / "dir/sub/c.txt") == "c\n");
    auto open_before = open_fd(o / "dir/a.txt", O_RDONLY);

    fs::remove(o.source / "hello.txt");
    fs::remove(o.source / "dir" / "a.txt");
    // A change through the mount to a file that just vanished: any answer but a crash.
    (void)::chmod((o / "dir/b.txt").c_str(), 0600);
    fs::remove(o.source / "dir" / "b.txt");
    (void)::chmod((o / "hello.txt").c_str(), 0600);
    try {
        (void)pread_all(open_before.get());
    } catch (const std::exception&) {
        // An error is a fine answer for a file that is gone.
    }
    open_before.reset();

    CHECK(eventually([&] { return stat_outcome(o / "hello.txt") == "ENOENT"; }));
    CHECK(open_outcome(o / "hello.txt", O_RDONLY) == "ENOENT");
    CHECK(eventually([&] { return names_in(o.root()).count("hello.txt") == 0; }));
    CHECK(eventually([&] { return stat_outcome(o / "dir/a.txt") == "ENOENT"; }));

    check_sh("rm -rf " + quoted(o.source / "dir" / "sub"));
    CHECK(eventually([&] { return stat_outcome(o / "dir/sub/c.txt") == "ENOENT"; }));
    CHECK(eventually([&] { return stat_outcome(o / "dir/sub") == "ENOENT"; }));

    // Still serving.
    REQUIRE(is_fuse_mounted(o.root()));
    put_file(o / "after.txt", "after\n");
    CHECK(read_path(o / "after.txt") == "after\n");
    CHECK(read_path(o / "script.sh") == "#!/bin/sh\necho lower script\n");
    CHECK(names_in(o.root()).count("script.sh") == 1);
    o.mount->remount();
    CHECK(stat_outcome(o / "hello.txt") == "ENOENT");
    CHECK(read_path(o / "after.txt") == "after\n");
    o.mount->unmount();
}

TEST_CASE(
    "Overlay: a lower file changed in the source while mounted shows its new size, bytes "
    "and mtime",
    "[fuse]") {
    Overlay o;
    CHECK(read_path(o / "hello.txt") == "hello lower\n");
    CHECK(read_path(o / "dir/a.txt") == "a\n");

    put_file(o.source / "hello.txt", "hello lower, now longer\n");
    set_mtime(o.source / "hello.txt", at(1700000000, 5));
    CHECK(eventually([&] { return stat_of(o / "hello.txt").st_size == 24; }));
    CHECK(eventually([&] { return read_path(o / "hello.txt") == "hello lower, now longer\n"; }));
    CHECK(eventually([&] { return mtime_of(o / "hello.txt") == "1700000000.000000005"; }));

    // Same size, new bytes.
    put_file(o.source / "dir" / "a.txt", "A\n");
    set_mtime(o.source / "dir" / "a.txt", at(1700000001, 6));
    CHECK(eventually([&] { return mtime_of(o / "dir/a.txt") == "1700000001.000000006"; }));
    CHECK(eventually([&] { return read_path(o / "dir/a.txt") == "A\n"; }));

    REQUIRE(is_fuse_mounted(o.root()));
    put_file(o / "after.txt", "after\n");
    CHECK(read_path(o / "after.txt") == "after\n");
    o.mount->remount();
    CHECK(read_path(o / "hello.txt") == "hello lower, now longer\n");
    CHECK(mtime_of(o / "hello.txt") == "1700000000.000000005");
    o.mount->unmount();
}

TEST_CASE("Overlay: a file added to the source while mounted shows up within seconds", "[fuse]") {
    Overlay o;
    CHECK(stat_outcome(o / "added.txt") == "ENOENT");  // a negative entry the kernel may cache
    put_file(o.source / "added.txt", "added\n");
    CHECK(eventually([&] { return stat_outcome(o / "added.txt") == "ok"; }));
    CHECK(eventually([&] { return names_in(o.root()).count("added.txt") == 1; }));
    CHECK(read_path(o / "added.txt") == "added\n");
    o.mount->unmount();
}

// ---------------------------------------------------------------------------------------------
// Same paths: nothing in the store names the source.

namespace {

// The regular files under `root` whose bytes contain `needle`.
std::vector<std::string> files_containing(const fs::path& root, const std::string& needle) {
    std::vector<std::string> found;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        if (entry.is_regular_file() && !entry.is_symlink() &&
            read_path(entry.path()).find(needle) != std::string::npos) {
            found.push_back(entry.path().lexically_relative(root).string());
        }
    }
    return found;
}

}  // namespace

TEST_CASE(
    "Overlay: the store names no source path, so a moved store and source mount with the "
    "same view",
    "[fuse]") {
    Overlay o;
    // Look at everything (lower stamps), copy up, white out, rename.
    snapshot(o.root());
    REQUIRE(::chmod((o / "dir/a.txt").c_str(), 0600) == 0);
    REQUIRE(::unlink((o / "hello.txt").c_str()) == 0);
    REQUIRE(rename_outcome(o / "dir/b.txt", o / "b-moved.txt") == "ok");
    put_file(o / "new.txt", "new\n");
    const auto view = snapshot(o.root());
    o.finish();

    const auto source = fs::canonical(o.source).string();
    REQUIRE(fs::exists(o.store() / "meta" / "data.mdb"));
    CHECK(files_containing(o.store(), source) == std::vector<std::string>{});
    CHECK(files_containing(o.store(), o.root().string()) == std::vector<std::string>{});

    // Move both, mount elsewhere: the same tree, the same mtimes.
    fs::create_directories(o.tmp / "moved");
    fs::rename(o.source, o.tmp / "moved" / "checkout");
    fs::rename(o.store(), o.tmp / "moved" / "store");
    Mount elsewhere(o.tmp / "moved" / "store", o.tmp / "moved" / "mnt",
                    {"--source", (o.tmp / "moved" / "checkout").string()});
    check_same_tree(view, snapshot(elsewhere.path()));
}
