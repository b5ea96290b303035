// fbfs stat / verify / --help as a user runs them: exit codes, messages, and that bad input
// changes nothing.
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "store/meta/schema.h"
#include "store/meta/store.h"
#include "store/meta/volume_tree.h"
#include "store/pack/pack_format.h"
#include "store/pool/object_pool.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::test::run_cli;
using fbfs::test::TempDir;

namespace {

// Every path under `dir` with its size and mtime, to show that a command changed nothing.
std::set<std::string> snapshot(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        struct stat st {};
        lstat(entry.path().c_str(), &st);
        out.insert(entry.path().string() + " " + std::to_string(st.st_size) + " " +
                   std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec));
    }
    return out;
}

bool one_line(const std::string& text) {
    return !text.empty() && std::count(text.begin(), text.end(), '\n') == 1;
}

void make_store_with(const fs::path& root, std::initializer_list<std::string_view> contents) {
    auto store = fbfs::Store::open(root, fbfs::Store::Mode::create_if_missing);
    REQUIRE(store);
    for (auto content : contents) {
        REQUIRE((*store)->pool().put_bytes(content));
    }
}

// A volume "ws" holding the files `files` (name, bytes) in its root, each with times `time`.
void make_volume_with(const fs::path& root, std::int64_t time,
                      std::initializer_list<std::pair<std::string, std::string>> files) {
    auto store = fbfs::Store::open(root, fbfs::Store::Mode::create_if_missing);
    REQUIRE(store);
    auto tree = fbfs::VolumeTree::open(**store, "ws", 1000, 1000);
    REQUIRE(tree);
    for (const auto& [name, bytes] : files) {
        fbfs::InodeRecord record;
        record.mode = S_IFREG | 0644;
        record.atime = record.mtime = record.ctime = time;
        auto made = tree->create(fbfs::k_root_inode, name, record);
        REQUIRE(made);
        auto put = (*store)->pool().put_bytes(bytes);  // in the pool: nothing to publish
        REQUIRE(put);
        REQUIRE(tree->set_content(made->ino, put->id, bytes.size(), {},
                                  [&](fbfs::InodeRecord& r) { r.mtime = time; }));
    }
}

// Overwrites the `refs` count of object `id` in the (closed) store at `root`.
void set_refs(const fs::path& root, const fbfs::ObjectId& id, std::string_view bytes) {
    auto store = fbfs::Store::open(root, fbfs::Store::Mode::open_existing);
    REQUIRE(store);
    REQUIRE((*store)->env().write(
        [&](fbfs::LmdbTxn& txn) { return txn.put((*store)->tables().refs, id.raw(), bytes); }));
}

}  // namespace

TEST_CASE("CLI: --help lists every subcommand and --version prints the version", "[cli]") {
    auto help = run_cli({"--help"});
    CHECK(help.status == 0);
    for (const char* command : {"mount", "umount", "run", "pack", "unpack", "stat", "verify"}) {
        CHECK_THAT(help.out, Catch::Contains(command));
    }
    auto version = run_cli({"--version"});
    CHECK(version.status == 0);
    CHECK(version.out == fmt::format("fbfs {} (pack format {}, store schema {})\n", FBFS_VERSION,
                                     fbfs::pack::k_version, fbfs::k_schema_version));
}

TEST_CASE("CLI: a usage error exits 2", "[cli]") {
    CHECK(run_cli({"no-such-command"}).status == 2);
    CHECK(run_cli({"mount"}).status == 2);  // MOUNTPOINT is required
}

TEST_CASE("CLI: verify of a missing store is one clear line, exit 1, and creates nothing",
          "[cli]") {
    TempDir tmp;
    auto before = snapshot(tmp.path());
    auto result = run_cli({"verify", "--store", (tmp / "missing").string()});
    CHECK(result.status == 1);
    CHECK(one_line(result.err));
    CHECK_THAT(result.err, Catch::Contains("does not exist") && Catch::Contains("missing"));
    CHECK(snapshot(tmp.path()) == before);
}

TEST_CASE("CLI: verify of a file instead of a store is one clear line, exit 1", "[cli]") {
    TempDir tmp;
    fbfs::test::write_file(tmp / "file", "not a store");
    auto before = snapshot(tmp.path());
    auto result = run_cli({"verify", "--store", (tmp / "file").string()});
    CHECK(result.status == 1);
    CHECK(one_line(result.err));
    CHECK_THAT(result.err, Catch::Contains("not a directory"));
    CHECK(snapshot(tmp.path()) == before);
}

TEST_CASE("CLI: verify of a directory that is not a store changes nothing", "[cli]") {
    TempDir tmp;
    fs::create_directory(tmp / "empty");
    auto before = snapshot(tmp.path());
    auto result = run_cli({"verify", "--store", (tmp / "empty").string()});
    CHECK(result.status == 1);
    CHECK(one_line(result.err));
    CHECK_THAT(result.err, Catch::Contains("not an fbfs store"));
    CHECK(snapshot(tmp.path()) == before);
}

TEST_CASE("CLI: verify of a store this user cannot read is one clear line, exit 1", "[cli]") {
    TempDir tmp;
    make_store_with(tmp / "store", {"some bytes"});
    // The store stays 0700 root; its parent lets everyone through to find it.
    fs::permissions(tmp.path(),
                    fs::perms::owner_all | fs::perms::others_exec | fs::perms::group_exec);
    auto before = snapshot(tmp.path());
    // Root reads everything, so verify runs as the unprivileged user 'nobody'.
    auto result = fbfs::test::run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                   FBFS_BINARY, "verify", "--store", (tmp / "store").string()});
    CHECK(result.status == 1);
    CHECK(one_line(result.err));
    CHECK_THAT(result.err, Catch::Contains("not readable and writable"));
    CHECK(snapshot(tmp.path()) == before);
}

TEST_CASE("CLI: verify names a corrupt object and exits 1; a clean store exits 0", "[cli]") {
    TempDir tmp;
    make_store_with(tmp / "store", {"first object", "second object"});
    auto clean = run_cli({"verify", "--store", (tmp / "store").string()});
    CHECK(clean.status == 0);
    CHECK_THAT(clean.out, Catch::Contains("2 objects verified, 0 problems"));

    auto id = fbfs::ObjectId::of(std::string_view("second object"));
    auto path = tmp / "store" / "objects" / id.hex().substr(0, 2) / id.hex().substr(2);
    fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
    fbfs::test::write_file(path, "second objecT");
    auto corrupt = run_cli({"verify", "--store", (tmp / "store").string()});
    CHECK(corrupt.status == 1);
    CHECK_THAT(corrupt.err, Catch::Contains(id.hex()));
    CHECK_THAT(corrupt.err,
               !Catch::Contains(fbfs::ObjectId::of(std::string_view("first object")).hex()));
}

TEST_CASE("CLI: verify names an object whose reference count is corrupt or wrong, and exits 1",
          "[cli]") {
    TempDir tmp;
    auto root = tmp / "store";
    make_volume_with(root, 1'700'000'000'000'000'000, {{"a", "shared"}, {"b", "shared"}});
    auto id = fbfs::ObjectId::of(std::string_view("shared"));
    auto clean = run_cli({"verify", "--store", root.string()});
    CHECK(clean.status == 0);
    CHECK_THAT(clean.out, Catch::Contains("1 objects verified, 0 problems"));

    // Two inodes name the object: a count of 1 would let it be deleted while one still does.
    for (const auto& [count, said] :
         {std::pair<std::string, std::string>{fbfs::encode_u64(1),
                                              "has reference count 1 but 2 inodes name it"},
          {"bad", "has a corrupt reference count"}}) {
        set_refs(root, id, count);
        auto wrong = run_cli({"verify", "--store", root.string()});
        CHECK(wrong.status == 1);
        CHECK_THAT(wrong.err, Catch::Contains("object " + id.hex() + " " + said));
        CHECK_THAT(wrong.out, Catch::Contains("1 problems"));
    }
}

TEST_CASE("CLI: verify names an attribute that outlived its inode and exits 1", "[cli]") {
    TempDir tmp;
    make_volume_with(tmp / "store", 1, {{"kept", "bytes"}});
    {
        auto store = fbfs::Store::open(tmp / "store", fbfs::Store::Mode::open_existing);
        REQUIRE(store);
        auto tree = fbfs::VolumeTree::open(**store, "ws", 1000, 1000);
        REQUIRE(tree);
        auto kept = tree->lookup(fbfs::k_root_inode, "kept");
        REQUIRE((kept && *kept));
        REQUIRE(tree->set_xattr((*kept)->ino, "user.fine", "1", fbfs::XattrMode::any));
    }
    auto clean = run_cli({"verify", "--store", (tmp / "store").string()});
    CHECK(clean.status == 0);
    CHECK_THAT(clean.out, Catch::Contains("0 problems"));

    {
        // What a deletion that forgot the attributes would leave: a row of inode 77, which
        // does not exist.
        auto store = fbfs::Store::open(tmp / "store", fbfs::Store::Mode::open_existing);
        REQUIRE(store);
        auto tree = fbfs::VolumeTree::open(**store, "ws", 1000, 1000);
        REQUIRE(tree);
        REQUIRE((*store)->env().write([&](fbfs::LmdbTxn& txn) {
            return txn.put((*store)->tables().xattrs, fbfs::xattr_key(tree->id(), 77, "user.lost"),
                           "x");
        }));
    }
    auto leaked = run_cli({"verify", "--store", (tmp / "store").string()});
    CHECK(leaked.status == 1);
    CHECK_THAT(leaked.err, Catch::Contains("attribute user.lost of inode 77 of volume ws"));
    CHECK_THAT(leaked.out, Catch::Contains("1 problems"));
}

TEST_CASE("CLI: stat counts objects and stored bytes", "[cli]") {
    TempDir tmp;
    make_store_with(tmp / "store", {"abc", "defg", "abc"});
    auto result = run_cli({"stat", "--store", (tmp / "store").string(), "--json"});
    CHECK(result.status == 0);
    CHECK_THAT(result.out, Catch::Contains("\"objects\":2,\"stored_bytes\":7"));
}

TEST_CASE("CLI: stat --markdown prints a table per volume and one for the pool", "[cli]") {
    TempDir tmp;
    make_volume_with(tmp / "store", 1, {{"a.o", "object code"}, {"b.o", "more object code"}});
    auto result = run_cli({"stat", "--store", (tmp / "store").string(), "--markdown"});
    CHECK(result.status == 0);
    CHECK_THAT(result.out, Catch::StartsWith("| volume | files | directories | symlinks | bytes |\n"
                                             "|---|--:|--:|--:|--:|\n"
                                             "| ws | 2 | 1 | 0 | 27 B |\n"));
    CHECK_THAT(result.out, Catch::Contains("| objects | referenced | stored | logical |"));
    auto both = run_cli({"stat", "--store", (tmp / "store").string(), "--markdown", "--json"});
    CHECK(both.status == 2);
}

TEST_CASE("CLI: stat --digest is the same for the same files written at other times", "[cli]") {
    TempDir tmp;
    make_volume_with(tmp / "one", 1'000, {{"a.o", "object code"}, {"b.o", "more object code"}});
    make_volume_with(tmp / "two", 9'000, {{"a.o", "object code"}, {"b.o", "more object code"}});
    make_volume_with(tmp / "three", 1'000, {{"a.o", "object code"}, {"b.o", "changed code"}});
    auto digest = [&](const char* store) {
        auto result = run_cli({"stat", "--store", (tmp / store).string(), "--digest"});
        CHECK(result.status == 0);
        CHECK(result.out.size() == 65);  // 64 hex digits and a newline
        return result.out;
    };
    CHECK(digest("one") == digest("two"));
    CHECK(digest("one") != digest("three"));
    auto missing = run_cli({"stat", "--store", (tmp / "missing").string(), "--digest"});
    CHECK(missing.status == 1);
    CHECK(one_line(missing.err));
}
