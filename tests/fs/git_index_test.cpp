// GitIndex (fs/git_index.cpp) against indexes that git itself writes: it vouches for a file with
// the blob id git reports exactly while git would trust the file unchanged, for index versions
// 2, 3 and 4, and for nothing in a damaged index. No mount: the class reads through LowerLayer.
#include "fs/git_index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "fs/lower_layer.h"
#include "tests/support/mount.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::git_blob_id;
using fbfs::GitBlobId;
using fbfs::GitIndex;
using fbfs::LowerLayer;
using fbfs::test::lstat_of;
using fbfs::test::put_file;
using fbfs::test::run_tool_ok;
using fbfs::test::TempDir;

namespace {

std::string hex(const GitBlobId& id) {
    std::string out;
    for (auto b : id) {
        char two[3];
        std::snprintf(two, sizeof two, "%02x", b);
        out += two;
    }
    return out;
}

// A repository at tmp/repo with a few files, written a moment before git's index is, so that
// none is racily clean.
struct Repo {
    Repo() {
        fs::create_directories(root / "src");
        put_file(root / "README", "read me\n");
        put_file(root / "src" / "main.c", "int main(void) { return 0; }\n");
        put_file(root / "src" / "run.sh", "#!/bin/sh\n", 0755);
        put_file(root / "empty", "");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        git({"init", "-q"});
        git({"add", "-A"});
        git({"commit", "-qm", "files"});
    }
    std::string git(std::vector<std::string> args) const {
        args.insert(args.begin(), {"git", "-C", root.string(), "-c", "user.name=t", "-c",
                                   "user.email=t@example.org"});
        return run_tool_ok(args).out;
    }
    // What git says the blob of `path` at HEAD is.
    std::string blob(const std::string& path) const {
        auto out = git({"rev-parse", "HEAD:" + path});
        return out.substr(0, 40);
    }
    GitIndex load() const {
        auto lower = LowerLayer::open(root);
        REQUIRE(lower);
        return GitIndex::load(*lower);
    }
    std::optional<GitBlobId> vouch(const GitIndex& index, const std::string& path) const {
        return index.vouch(path, lstat_of(root / path));
    }

    TempDir tmp;
    fs::path root = tmp / "repo";
};

}  // namespace

TEST_CASE("GitIndex: files git just committed are vouched with the blob ids git reports", "[git]") {
    Repo repo;
    auto index = repo.load();
    CHECK(index.size() == 4);
    for (const char* path : {"README", "src/main.c", "src/run.sh", "empty"}) {
        auto vouched = repo.vouch(index, path);
        INFO(path);
        REQUIRE(vouched);
        CHECK(hex(*vouched) == repo.blob(path));
        // And the same id when the file is read and hashed instead.
        auto fd = fbfs::test::open_fd(repo.root / path, O_RDONLY);
        auto hashed = git_blob_id(fd.get(), lstat_of(repo.root / path).st_size);
        REQUIRE(hashed);
        CHECK(*hashed == *vouched);
    }
    CHECK_FALSE(repo.vouch(index, "src"));  // a directory
    CHECK_FALSE(index.vouch("untracked", lstat_of(repo.root / "README")));
}

TEST_CASE("GitIndex: a file changed, chmodded, or replaced since git looked is not vouched",
          "[git]") {
    Repo repo;
    // Same size, new bytes: mtime and ctime move.
    put_file(repo.root / "README", "READ ME\n");
    REQUIRE(::chmod((repo.root / "src" / "main.c").c_str(), 0755) == 0);
    fs::remove(repo.root / "src" / "run.sh");
    put_file(repo.root / "src" / "run.sh", "#!/bin/sh\n", 0755);  // another inode
    auto index = repo.load();
    CHECK_FALSE(repo.vouch(index, "README"));
    CHECK_FALSE(repo.vouch(index, "src/main.c"));
    CHECK_FALSE(repo.vouch(index, "src/run.sh"));
    CHECK(repo.vouch(index, "empty"));
}

TEST_CASE("GitIndex: a file as new as the index is racily clean and not vouched", "[git]") {
    Repo repo;
    // The index's own mtime set back to the file's: git would read the file again.
    auto file = lstat_of(repo.root / "README");
    timespec times[2] = {file.st_atim, file.st_mtim};
    REQUIRE(::utimensat(AT_FDCWD, (repo.root / ".git" / "index").c_str(), times, 0) == 0);
    auto index = repo.load();
    CHECK_FALSE(repo.vouch(index, "README"));
}

TEST_CASE("GitIndex: versions 3 and 4 read alike; entries git does not trust are left out",
          "[git]") {
    Repo repo;
    SECTION("version 4, prefix-compressed paths") {
        repo.git({"update-index", "--index-version", "4"});
    }
    SECTION("version 3: an intent-to-add entry, and skip-worktree and assume-unchanged ones") {
        put_file(repo.root / "src" / "new.c", "int n;\n");
        repo.git({"add", "-N", "src/new.c"});
        repo.git({"update-index", "--skip-worktree", "empty"});
        repo.git({"update-index", "--assume-unchanged", "src/run.sh"});
        auto index = repo.load();
        CHECK_FALSE(repo.vouch(index, "src/new.c"));
        CHECK_FALSE(repo.vouch(index, "empty"));
        CHECK_FALSE(repo.vouch(index, "src/run.sh"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    repo.git({"status", "--porcelain"});  // may rewrite the index, still vouching
    auto index = repo.load();
    auto readme = repo.vouch(index, "README");
    REQUIRE(readme);
    CHECK(hex(*readme) == repo.blob("README"));
    auto main_c = repo.vouch(index, "src/main.c");
    REQUIRE(main_c);
    CHECK(hex(*main_c) == repo.blob("src/main.c"));
}

TEST_CASE("GitIndex: a damaged index vouches for nothing and says what is wrong", "[git]") {
    Repo repo;
    auto bytes = fbfs::test::read_path(repo.root / ".git" / "index");
    for (std::size_t cut : {std::size_t{0}, std::size_t{11}, std::size_t{40}, bytes.size() / 2}) {
        auto parsed = GitIndex::parse(std::string_view(bytes).substr(0, cut), 0);
        INFO("cut at " << cut);
        REQUIRE_FALSE(parsed);
        CHECK(parsed.error().message.starts_with("git index: "));
    }
    auto wrong_version = bytes;
    wrong_version[7] = 9;
    auto parsed = GitIndex::parse(wrong_version, 0);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().message == "git index: version 9 (2 to 4 are known)");

    put_file(repo.root / ".git" / "index", bytes.substr(0, bytes.size() / 2));
    CHECK(repo.load().size() == 0);
}

// ---- through a mount --------------------------------------------------------------------------

namespace {

// The source status line of the daemon serving the store's default volume, once its warm-up
// has finished (empty if it does not within 10 s).
std::string warmed_status(const fs::path& store) {
    std::string line;
    fbfs::test::within(std::chrono::seconds(10), [&] {
        line = fbfs::test::source_status(store);
        return line.find("warm-up") != std::string::npos;
    });
    return line.find("warm-up") != std::string::npos ? line : "";
}

}  // namespace

TEST_CASE(
    "GitIndex: a fresh clone on another runner shows the first runner's mtimes without "
    "reading a file",
    "[fuse]") {
    Repo repo;
    TempDir tmp;
    auto store = tmp / "store";
    std::map<std::string, std::int64_t> mtimes;
    {
        fbfs::test::Mount a(store, tmp / "mnt", {"--source", repo.root.string()});
        CHECK_THAT(warmed_status(store), Catch::Contains("4 files' content from git's index, 0 "
                                                         "hashed"));
        for (const char* path : {"README", "src/main.c", "src/run.sh", "empty"}) {
            mtimes[path] = fbfs::test::stat_of(a / path).st_mtim.tv_sec;
        }
        a.unmount();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // new mtimes on the clone
    auto clone = tmp / "clone";
    run_tool_ok({"git", "clone", "-q", repo.root.string(), clone.string()});
    // As actions/checkout leaves it: git's own next look re-checks the racily clean entries.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    run_tool_ok({"git", "-C", clone.string(), "status", "--porcelain"});
    fbfs::test::Mount b(store, tmp / "mnt", {"--source", clone.string()});
    CHECK_THAT(warmed_status(store), Catch::Contains("4 files' content from git's index, 0 "
                                                     "hashed"));
    for (const auto& [path, mtime] : mtimes) {
        INFO(path);
        CHECK(fbfs::test::stat_of(clone / path).st_mtim.tv_sec > mtime);  // a fresh checkout
        CHECK(fbfs::test::stat_of(b / path).st_mtim.tv_sec == mtime);     // shown as on A
    }
    b.unmount();
}
