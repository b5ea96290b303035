// The source under an overlay mount changed straight in the checkout while the kernel holds the
// old entry or attributes (fs/source_watch.cpp, fs/overlay_watch.cpp): every kind of change shows
// through the mount within 0.1 s, although lower entries are now cached for a day; and the cases
// where watching fails: an overflowed event queue, too few watches (a user namespace with its own
// limit), and a source removed while mounted.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "tests/support/make_project.h"
#include "tests/support/mount.h"
#include "tests/support/nobody.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::test::Mount;
using fbfs::test::open_fd;
using fbfs::test::pread_all;
using fbfs::test::put_file;
using fbfs::test::read_path;
using fbfs::test::run;
using fbfs::test::run_tool;
using fbfs::test::run_tool_ok;
using fbfs::test::RunOptions;
using fbfs::test::stat_of;
using fbfs::test::stat_outcome;
using fbfs::test::TempDir;
using fbfs::test::within;

namespace {

constexpr auto k_at_once = std::chrono::milliseconds(100);

std::string read_or_error(const fs::path& path) {
    try {
        return read_path(path);
    } catch (const std::exception& e) {
        return std::string("error: ") + e.what();
    }
}

// A source tree, a store, and the volume mounted over the source at tmp/mnt; the constructor
// waits until the daemon watches every source directory (its status file says so).
struct Watched {
    explicit Watched(const std::function<void(const fs::path&)>& populate) {
        fs::create_directories(source);
        populate(source);
        mount.emplace(tmp / "store", tmp / "mnt",
                      std::vector<std::string>{"--source", source.string()});
        REQUIRE(within(std::chrono::seconds(10), [&] { return status().starts_with("watched"); }));
    }
    fs::path operator/(const std::string& name) const { return mount->path() / name; }
    std::string status() const { return fbfs::test::source_status(tmp / "store"); }
    std::string log() const { return read_or_error(tmp / "store" / "log" / "default.log"); }

    TempDir tmp;  // first: destroyed after the mount
    fs::path source = tmp / "src";
    std::optional<Mount> mount;
};

void small_tree(const fs::path& src) {
    fs::create_directories(src / "dir" / "sub");
    put_file(src / "a.txt", "alpha\n");
    put_file(src / "dir" / "b.txt", "bravo\n");
    put_file(src / "dir" / "sub" / "c.txt", "charlie\n");
}

}  // namespace

TEST_CASE("Source watch: content edited in place, truncated or appended shows at once", "[fuse]") {
    Watched w(small_tree);
    REQUIRE(read_path(w / "a.txt") == "alpha\n");  // pages and attributes now cached

    {
        auto fd = open_fd(w.source / "a.txt", O_WRONLY);  // same size, new bytes
        REQUIRE(::pwrite(fd.get(), "ALPHA", 5, 0) == 5);
    }
    CHECK(within(k_at_once, [&] { return read_path(w / "a.txt") == "ALPHA\n"; }));

    REQUIRE(::truncate((w.source / "a.txt").c_str(), 2) == 0);
    CHECK(within(k_at_once, [&] { return stat_of(w / "a.txt").st_size == 2; }));
    CHECK(read_path(w / "a.txt") == "AL");

    std::ofstream(w.source / "a.txt", std::ios::app) << "+appended";
    CHECK(within(k_at_once, [&] { return read_path(w / "a.txt") == "AL+appended"; }));
    CHECK(stat_of(w / "a.txt").st_size == 11);
    w.mount->unmount();
}

TEST_CASE("Source watch: chmod in the source shows at once", "[fuse]") {
    Watched w(small_tree);
    REQUIRE((stat_of(w / "dir/b.txt").st_mode & 07777) == 0644);
    REQUIRE(::chmod((w.source / "dir" / "b.txt").c_str(), 0751) == 0);
    CHECK(within(k_at_once, [&] { return (stat_of(w / "dir/b.txt").st_mode & 07777) == 0751; }));
    REQUIRE(::chmod((w.source / "dir").c_str(), 0700) == 0);
    CHECK(within(k_at_once, [&] { return (stat_of(w / "dir").st_mode & 07777) == 0700; }));
    w.mount->unmount();
}

TEST_CASE("Source watch: a file made where the kernel cached a negative entry shows at once",
          "[fuse]") {
    Watched w(small_tree);
    REQUIRE(stat_outcome(w / "dir/new.h") == "ENOENT");
    REQUIRE(stat_outcome(w / "new.h") == "ENOENT");
    put_file(w.source / "dir" / "new.h", "#define NEW 1\n");
    put_file(w.source / "new.h", "#define TOP 1\n");
    CHECK(within(k_at_once, [&] { return stat_outcome(w / "dir/new.h") == "ok"; }));
    CHECK(within(k_at_once, [&] { return stat_outcome(w / "new.h") == "ok"; }));
    CHECK(read_path(w / "dir/new.h") == "#define NEW 1\n");
    w.mount->unmount();
}

TEST_CASE("Source watch: a file deleted whose data is in the page cache goes at once", "[fuse]") {
    Watched w(small_tree);
    auto open_before = open_fd(w / "dir/sub/c.txt", O_RDONLY);
    REQUIRE(pread_all(open_before.get()) == "charlie\n");
    fs::remove(w.source / "dir" / "sub" / "c.txt");
    CHECK(within(k_at_once, [&] { return stat_outcome(w / "dir/sub/c.txt") == "ENOENT"; }));
    CHECK(within(k_at_once, [&] { return fbfs::test::names_in(w / "dir/sub").empty(); }));
    open_before.reset();
    w.mount->unmount();
}

TEST_CASE("Source watch: a file or a directory renamed in the source moves at once", "[fuse]") {
    Watched w(small_tree);
    REQUIRE(read_path(w / "a.txt") == "alpha\n");
    REQUIRE(read_path(w / "dir/sub/c.txt") == "charlie\n");
    fs::rename(w.source / "a.txt", w.source / "dir" / "a-moved.txt");
    fs::rename(w.source / "dir" / "sub", w.source / "sub-moved");
    CHECK(within(k_at_once, [&] { return stat_outcome(w / "a.txt") == "ENOENT"; }));
    CHECK(within(k_at_once, [&] { return read_or_error(w / "dir/a-moved.txt") == "alpha\n"; }));
    CHECK(within(k_at_once, [&] { return stat_outcome(w / "dir/sub") == "ENOENT"; }));
    CHECK(within(k_at_once, [&] { return read_or_error(w / "sub-moved/c.txt") == "charlie\n"; }));
    // The moved directory is still watched, under its new name.
    put_file(w.source / "sub-moved" / "d.txt", "delta\n");
    CHECK(within(k_at_once, [&] { return read_or_error(w / "sub-moved/d.txt") == "delta\n"; }));
    w.mount->unmount();
}

TEST_CASE("Source watch: a directory created with files in it shows whole at once", "[fuse]") {
    Watched w(small_tree);
    REQUIRE(stat_outcome(w / "made") == "ENOENT");
    REQUIRE(stat_outcome(w / "moved-in") == "ENOENT");
    fs::create_directories(w.source / "made" / "deep");
    put_file(w.source / "made" / "deep" / "e.txt", "echo\n");
    // A tree built elsewhere and moved in, as `git checkout` and `tar` do.
    fs::create_directories(w.tmp / "outside" / "x");
    put_file(w.tmp / "outside" / "x" / "f.txt", "foxtrot\n");
    fs::rename(w.tmp / "outside", w.source / "moved-in");
    CHECK(within(k_at_once, [&] { return read_or_error(w / "made/deep/e.txt") == "echo\n"; }));
    CHECK(within(k_at_once, [&] { return read_or_error(w / "moved-in/x/f.txt") == "foxtrot\n"; }));
    // Directories that arrived are watched too.
    put_file(w.source / "moved-in" / "x" / "g.txt", "golf\n");
    CHECK(within(k_at_once, [&] { return read_or_error(w / "moved-in/x/g.txt") == "golf\n"; }));
    w.mount->unmount();
}

TEST_CASE("Source watch: a symlink replaced by one to another target reads the new target",
          "[fuse]") {
    Watched w(small_tree);
    REQUIRE(::symlink("a.txt", (w.source / "link").c_str()) == 0);
    CHECK(within(k_at_once, [&] { return read_or_error(w / "link") == "alpha\n"; }));
    REQUIRE(fbfs::test::readlink_of(w / "link") == "a.txt");
    REQUIRE(::symlink("dir/b.txt", (w.source / "link.new").c_str()) == 0);
    fs::rename(w.source / "link.new", w.source / "link");  // what ln -sf does
    CHECK(within(k_at_once, [&] { return fbfs::test::readlink_of(w / "link") == "dir/b.txt"; }));
    CHECK(read_path(w / "link") == "bravo\n");
    w.mount->unmount();
}

TEST_CASE("Source watch: a file replaced by a directory shows as a directory at once", "[fuse]") {
    Watched w(small_tree);
    REQUIRE(read_path(w / "dir/b.txt") == "bravo\n");
    fs::remove(w.source / "dir" / "b.txt");
    fs::create_directory(w.source / "dir" / "b.txt");
    put_file(w.source / "dir" / "b.txt" / "inside", "india\n");
    // In between it may be missing, as it would be natively; never anything else.
    CHECK(within(k_at_once, [&] {
        return stat_outcome(w / "dir/b.txt") == "ok" && S_ISDIR(stat_of(w / "dir/b.txt").st_mode);
    }));
    CHECK(within(k_at_once, [&] { return read_or_error(w / "dir/b.txt/inside") == "india\n"; }));
    w.mount->unmount();
}

TEST_CASE("Source watch: git checkout of another branch, then make -q at once, sees the change",
          "[fuse]") {
    Watched w([](const fs::path& src) {
        fs::create_directories(src / "src");
        fs::create_directories(src / "include");
        put_file(src / "Makefile", std::string(fbfs::test::k_depfile_makefile));
        put_file(src / "include" / "config.h", "#define VALUE 1\n");
        put_file(src / "src" / "main.c",
                 "#include \"config.h\"\nint main(void) { return VALUE - 1; }\n");
        put_file(src / "src" / "other.c", "int other(void) { return 2; }\n");
        put_file(src / ".gitignore", "build/\n");
    });
    auto git = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"git", "-C", w.source.string(), "-c", "user.name=t", "-c",
                                   "user.email=t@example.org"});
        run_tool_ok(args);
    };
    git({"init", "-q", "-b", "main"});
    git({"add", "-A"});
    git({"commit", "-qm", "main"});
    git({"checkout", "-qb", "other"});
    put_file(w.source / "include" / "config.h", "#define VALUE 2\n");
    git({"commit", "-qam", "other"});
    git({"checkout", "-q", "main"});

    RunOptions in_mount;
    in_mount.cwd = w.mount->path().string();
    run_tool_ok({"make", "-s"}, in_mount);
    REQUIRE(run_tool({"make", "-q"}, in_mount).status == 0);

    git({"checkout", "-q", "other"});
    CHECK(run_tool({"make", "-q"}, in_mount).status == 1);  // config.h changed: rebuild
    run_tool_ok({"make", "-s"}, in_mount);
    CHECK(run_tool({"make", "-q"}, in_mount).status == 0);

    git({"checkout", "-q", "main"});  // back: content differs from the last stamp again
    CHECK(run_tool({"make", "-q"}, in_mount).status == 1);
    run_tool_ok({"make", "-s"}, in_mount);
    CHECK(run_tool({"make", "-q"}, in_mount).status == 0);
    CHECK(run({"./build/app"}, in_mount).status == 0);  // built from main's config.h
    w.mount->unmount();
}

TEST_CASE(
    "Source watch: the content-stable mtime of an untouched file survives a change next "
    "to it",
    "[fuse]") {
    Watched w(small_tree);
    auto before = stat_of(w / "dir/b.txt").st_mtim;
    put_file(w.source / "dir" / "new.txt", "new\n");
    fs::last_write_time(w.source / "dir" / "b.txt", fs::file_time_type::clock::now());  // touch
    CHECK(within(k_at_once, [&] { return stat_outcome(w / "dir/new.txt") == "ok"; }));
    // Same bytes: the mount keeps showing the recorded mtime, whatever the real one is now.
    auto after = stat_of(w / "dir/b.txt").st_mtim;
    CHECK(after.tv_sec == before.tv_sec);
    CHECK(after.tv_nsec == before.tv_nsec);
    w.mount->unmount();
}

// ---- when watching fails ------------------------------------------------------------------

TEST_CASE("Source watch: after the event queue overflows, every change made meanwhile shows",
          "[fuse]") {
    // A queue of 8 events for this mount's watch: fs.inotify.max_queued_events is read when the
    // watch starts, so it is lowered for that moment only (another daemon starting meanwhile
    // would overflow too, and recover the same way).
    const fs::path knob = "/proc/sys/fs/inotify/max_queued_events";
    std::string saved = read_path(knob);
    put_file(knob, "8\n");
    std::optional<Watched> w;
    try {
        w.emplace(small_tree);
    } catch (...) {
        put_file(knob, saved);
        throw;
    }
    put_file(knob, saved);

    constexpr int k_files = 300;
    for (int i = 0; i < k_files; ++i) {  // negative entries the kernel now holds
        REQUIRE(stat_outcome(*w / fmt::format("dir/n{}.h", i)) == "ENOENT");
    }
    REQUIRE(read_path(*w / "a.txt") == "alpha\n");
    // The daemon stopped while the source changes (nothing touches the mount meanwhile), so the
    // 8-event queue surely overflows.
    auto mounted = fbfs::test::mounts_at(w->mount->path());
    REQUIRE(mounted.size() == 1);
    pid_t daemon = std::stoi(mounted[0].source.substr(mounted[0].source.rfind(':') + 1));
    REQUIRE(::kill(daemon, SIGSTOP) == 0);
    for (int i = 0; i < k_files; ++i) {
        put_file(w->source / "dir" / fmt::format("n{}.h", i), "x\n");
    }
    put_file(w->source / "a.txt", "changed too\n");
    REQUIRE(::kill(daemon, SIGCONT) == 0);
    CHECK(within(k_at_once * 5, [&] {
        for (int i = 0; i < k_files; ++i) {
            if (stat_outcome(*w / fmt::format("dir/n{}.h", i)) != "ok") {
                return false;
            }
        }
        return read_or_error(*w / "a.txt") == "changed too\n";
    }));
    CHECK_THAT(w->log(), Catch::Contains("event queue overflowed"));
    CHECK(w->status().starts_with("watched"));
    w->mount->unmount();
}

TEST_CASE(
    "Source watch: too few inotify watches fall back to 1 s timeouts, said in the log and "
    "fbfs stat",
    "[fuse]") {
    fbfs::test::require_root();
    // A user namespace of its own has its own watch limit (and lets its root mount FUSE), so the
    // limit of the machine, shared with every other test, stays as it is.
    TempDir tmp;
    small_tree(tmp / "src");
    fs::create_directories(tmp / "src" / "dir2");
    fs::create_directories(tmp / "mnt");
    std::string fbfs = FBFS_BINARY;
    std::string script =
        "set -e\n"
        "echo 3 > /proc/sys/user/max_inotify_watches\n" +
        fbfs + " mount --store store --source src mnt\n" +
        // The first walk gives up at the fourth directory (root, dir, dir/sub, dir2).
        "for i in $(seq 100); do grep -q 'not watched' store/log/default.source && break; "
        "sleep 0.05; done\n" +
        fbfs +
        " stat --store store mnt\n"
        "cat mnt/a.txt\n"
        "echo changed > src/a.txt\n"
        "sleep 1.2\n"  // the 1 s timeout, past
        "cat mnt/a.txt\n" +
        fbfs + " umount mnt\n";
    auto result = run({"unshare", "--user", "--map-root-user", "--mount", "--propagation",
                       "private", "/bin/sh", "-c", script},
                      RunOptions{.cwd = tmp.path().string(), .env = {}, .input = {}});
    INFO("stdout: " << result.out << "\nstderr: " << result.err);
    CHECK(result.status == 0);
    CHECK_THAT(result.out, Catch::Contains("source not watched: the inotify watch limit (3, "
                                           "fs.inotify.max_user_watches) is too small"));
    CHECK_THAT(result.out, Catch::Contains("lower entries cached for 1 s"));
    CHECK_THAT(result.out, Catch::Contains("alpha\nchanged\n"));
    CHECK_THAT(read_or_error(tmp / "store" / "log" / "default.log"),
               Catch::Contains("the source is not watched: the inotify watch limit"));
    CHECK_FALSE(fbfs::test::is_fuse_mounted(tmp / "mnt"));
}

TEST_CASE(
    "Source watch: a source removed while mounted leaves the upper files served and "
    "umount working",
    "[fuse]") {
    Watched w(small_tree);
    put_file(w / "built.o", "object\n");
    REQUIRE(read_path(w / "a.txt") == "alpha\n");
    fs::remove_all(w.source);
    CHECK(within(k_at_once, [&] { return stat_outcome(w / "a.txt") == "ENOENT"; }));
    CHECK(stat_outcome(w / "dir") == "ENOENT");
    CHECK(read_path(w / "built.o") == "object\n");
    CHECK(fbfs::test::names_in(w.mount->path()) == std::set<std::string>{"built.o"});
    put_file(w / "after.o", "after\n");
    CHECK(read_path(w / "after.o") == "after\n");
    w.mount->unmount();
}

TEST_CASE(
    "Source watch: a source made unreadable while mounted gives clear errors, serves upper "
    "files, and unmounts",
    "[fuse]") {
    // As an ordinary user, for whom permissions hold (root reads through mode 000).
    fbfs::test::NobodyMachine machine;
    auto result = machine.as_nobody({machine.dev_fuse(0666)}, R"(set -e
        src=$HOME/src
        mkdir -p "$src/secret"
        echo lower > "$src/a.txt"
        echo hidden > "$src/secret/b.txt"
        "$FBFS" mount --source "$src" "$M"
        cat "$M/a.txt" "$M/secret/b.txt"
        echo upper > "$M/built.o"
        chmod 000 "$src/secret"
        sleep 0.1
        cat "$M/secret/b.txt" 2>&1 || echo "secret refused"
        chmod 000 "$src"
        sleep 0.1
        cat "$M/built.o"
        ls "$M"
        "$FBFS" umount "$M" && echo unmounted
        chmod 755 "$src" "$src/secret")");
    CHECK(result.status == 0);
    CHECK_THAT(result.out, Catch::StartsWith("lower\nhidden\n"));
    CHECK_THAT(result.out, Catch::Contains("secret/b.txt: Permission denied\nsecret refused\n"));
    // The volume's own files are still there, the source's are not shown, and the log says why.
    CHECK_THAT(result.out, Catch::EndsWith("upper\nbuilt.o\nunmounted\n"));
    CHECK_THAT(read_or_error(machine / "home/.cache/fbfs/log/default.log"),
               Catch::Contains("cannot read the source: source file .: Permission denied"));
}
