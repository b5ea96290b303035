// Real tools inside real fbfs mounts: cmake and ninja building googletest, g++ linking against
// it, git, ccache and `fbfs run`. Each test asserts what a user of that tool relies on, including
// that the results survive an unmount: a build that stays up to date, a repository that stays
// clean, a compiler cache that hits.
//
// The tools are installed by scripts/deps; a missing one fails the test rather than skipping it.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/mount.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::test::command_line;
using fbfs::test::installed;
using fbfs::test::Mount;
using fbfs::test::MountedStore;
using fbfs::test::read_file;
using fbfs::test::run_tool;
using fbfs::test::run_tool_ok;
using fbfs::test::RunOptions;
using fbfs::test::RunResult;
using fbfs::test::tail;
using fbfs::test::TempDir;
using fbfs::test::write_file;

namespace {

// The value of `key` in `ccache --print-stats` output (tab-separated "key value" lines).
long ccache_stat(const std::string& stats, const std::string& key) {
    std::istringstream lines(stats);
    std::string name;
    long value = 0;
    while (lines >> name >> value) {
        if (name == key) {
            return value;
        }
    }
    FAIL("ccache --print-stats printed no " << key << ":\n" << stats);
    return -1;
}

}  // namespace

TEST_CASE(
    "Mount: googletest configures and builds with cmake and ninja, and a test linked against it "
    "runs",
    "[fuse]") {
    MountedStore m;
    const std::string build = (m / "build").string();

    run_tool_ok({"cmake", "-S", "/usr/src/googletest", "-B", build, "-G", "Ninja"});
    run_tool_ok({"ninja", "-C", build});
    for (const char* library : {"libgtest.a", "libgtest_main.a", "libgmock.a", "libgmock_main.a"}) {
        INFO(library);
        CHECK(fs::is_regular_file(m / "build" / "lib" / library));
    }

    write_file(m / "smoke_test.cpp",
               "#include <gtest/gtest.h>\n"
               "TEST(A, B) { EXPECT_EQ(1, 1); }\n");
    RunOptions in_mount;
    in_mount.cwd = m.mount.path().string();
    run_tool_ok(
        {"g++", "-std=c++17", "-I/usr/src/googletest/googletest/include", "smoke_test.cpp",
         "build/lib/libgtest_main.a", "build/lib/libgtest.a", "-pthread", "-o", "smoke_test"},
        in_mount);
    auto test_run = run_tool_ok({(m / "smoke_test").string()}, in_mount);
    INFO(test_run.out);
    CHECK(test_run.out.find("[  PASSED  ] 1 test") != std::string::npos);

    // What was built, and the mtimes ninja compares, must persist: nothing left to do.
    m.mount.remount();
    auto dry_run = run_tool_ok({"ninja", "-C", build, "-n", "-d", "explain"});
    INFO("ninja -n -d explain after remount:\n" << tail(dry_run.out) << tail(dry_run.err));
    CHECK(dry_run.out.find("ninja: no work to do.") != std::string::npos);
    CHECK(fbfs::test::run({(m / "smoke_test").string()}).status == 0);
}

TEST_CASE("Mount: git init, add, commit, status and gc work in a mount", "[fuse]") {
    MountedStore m;
    TempDir home;
    write_file(home / "gitconfig", "");
    const std::string repo = (m / "repo").string();
    RunOptions git_options;
    git_options.cwd = repo;
    git_options.env = {{"HOME", home.path().string()},
                       {"XDG_CONFIG_HOME", home.path().string()},
                       {"GIT_CONFIG_GLOBAL", (home / "gitconfig").string()},
                       {"GIT_CONFIG_NOSYSTEM", "1"},
                       {"GIT_AUTHOR_NAME", "fbfs test"},
                       {"GIT_AUTHOR_EMAIL", "test@fbfs.invalid"},
                       {"GIT_COMMITTER_NAME", "fbfs test"},
                       {"GIT_COMMITTER_EMAIL", "test@fbfs.invalid"}};
    auto git = [&](std::vector<std::string> args) {
        args.insert(args.begin(), "git");
        return run_tool_ok(args, git_options);
    };

    fs::create_directories(m / "repo" / "src");
    write_file(m / "repo" / "README", "fbfs git test\n");
    write_file(m / "repo" / "src" / "main.c", "int main(void) { return 0; }\n");
    write_file(m / "repo" / "src" / "util.c", "int util(void) { return 1; }\n");
    git({"init", "-q", "-b", "main"});
    git({"add", "."});
    git({"commit", "-q", "-m", "first"});
    CHECK(git({"status", "--porcelain"}).out.empty());

    write_file(m / "repo" / "src" / "util.c", "int util(void) { return 2; }\n");
    CHECK(git({"status", "--porcelain"}).out == " M src/util.c\n");
    git({"commit", "-q", "-a", "-m", "second"});
    CHECK(git({"status", "--porcelain"}).out.empty());

    git({"gc", "-q", "--prune=now"});
    CHECK(fs::exists(m / "repo" / ".git" / "packed-refs"));
    git({"fsck", "--full", "--strict", "--no-progress"});
    CHECK(git({"log", "--format=%s"}).out == "second\nfirst\n");

    m.mount.remount();
    // diff-files does not refresh the index: it reports a file whose stat data (inode, times,
    // size) changed across the remount as modified, which status would hide by rehashing it.
    auto stat_check = run_tool({"git", "diff-files", "--name-only"}, git_options);
    CHECK(stat_check.status == 0);
    CHECK(stat_check.out.empty());
    CHECK(git({"status", "--porcelain"}).out.empty());
    git({"fsck", "--full", "--strict", "--no-progress"});
    CHECK(git({"log", "--format=%s"}).out == "second\nfirst\n");
    CHECK(read_file(m / "repo" / "src" / "util.c") == "int util(void) { return 2; }\n");
}

TEST_CASE("Mount: ccache with CCACHE_DIR inside the mount hits on a second build", "[fuse]") {
    MountedStore m;
    const std::vector<std::string> sources{"alpha", "beta", "gamma"};
    fs::create_directories(m / "src");
    for (const auto& name : sources) {
        std::string body =
            "int " + name + "(int x) { printf(\"" + name + " %d\\n\", x); return x; }\n";
        write_file(m / "src" / (name + ".c"), "#include <stdio.h>\n" + body);
    }
    RunOptions options;
    options.cwd = m.mount.path().string();
    options.env = {{"CCACHE_DIR", (m / "ccache").string()},
                   {"CCACHE_CONFIGPATH", (m.tmp / "ccache.conf").string()}};
    write_file(m.tmp / "ccache.conf", "");
    auto build_into = [&](const std::string& out_dir) {
        fs::create_directories(m / out_dir);
        for (const auto& name : sources) {
            run_tool_ok({"ccache", "gcc", "-O2", "-c", "src/" + name + ".c", "-o",
                         out_dir + "/" + name + ".o"},
                        options);
        }
    };
    auto stats = [&] { return run_tool_ok({"ccache", "--print-stats"}, options).out; };

    run_tool_ok({"ccache", "--zero-stats"}, options);
    build_into("out1");
    auto first = stats();
    INFO("first pass:\n" << first);
    CHECK(ccache_stat(first, "cache_miss") == static_cast<long>(sources.size()));

    // The cache lives in the volume: a new mount of it must still hit.
    m.mount.remount();
    run_tool_ok({"ccache", "--zero-stats"}, options);
    build_into("out2");
    auto second = stats();
    INFO("second pass:\n" << second);
    CHECK(ccache_stat(second, "direct_cache_hit") + ccache_stat(second, "preprocessed_cache_hit") ==
          static_cast<long>(sources.size()));
    CHECK(ccache_stat(second, "cache_miss") == 0);

    for (const auto& name : sources) {
        INFO(name << ".o");
        auto built = read_file(m / "out1" / (name + ".o"));
        CHECK(!built.empty());
        CHECK(read_file(m / "out2" / (name + ".o")) == built);
    }
}

TEST_CASE("Mount: fbfs run runs the command in the mount and returns its exit status", "[fuse]") {
    TempDir tmp;
    const auto mountpoint = fs::weakly_canonical(tmp.path()) / "mnt";
    fs::create_directories(mountpoint);

    auto result = fbfs::test::run({"timeout", "-k", "10", "120", FBFS_BINARY, "run", "--store",
                                   (tmp / "store").string(), mountpoint.string(), "--", "sh", "-c",
                                   "pwd; echo x > f; exit 7"});
    // Whatever happened, leave no mount behind for the next test.
    bool left_mounted = fbfs::test::is_fuse_mounted(mountpoint);
    if (left_mounted) {
        fbfs::test::force_unmount(mountpoint);
    }
    INFO("status " << result.status << "\nstdout:\n" << result.out << "\nstderr:\n" << result.err);
    CHECK(result.status == 7);
    CHECK(result.out == mountpoint.string() + "\n");
    CHECK_FALSE(left_mounted);

    Mount again(tmp / "store", mountpoint);
    CHECK(read_file(mountpoint / "f") == "x\n");
}
