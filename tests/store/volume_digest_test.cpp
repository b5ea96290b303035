#include "store/meta/volume_digest.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <tuple>

#include "store/meta/schema.h"
#include "store/meta/volume_snapshot.h"
#include "store/meta/volume_tree.h"
#include "tests/support/temp_dir.h"

using fbfs::content_digest;
using fbfs::InodeNumber;
using fbfs::InodeRecord;
using fbfs::k_root_inode;
using fbfs::ObjectId;
using fbfs::Store;
using fbfs::store_content_digest;
using fbfs::VolumeSnapshot;
using fbfs::test::TempDir;

namespace {

InodeRecord record(std::uint32_t mode, std::uint32_t nlink, std::int64_t time) {
    InodeRecord r;
    r.mode = mode;
    r.nlink = nlink;
    r.uid = 1000;
    r.gid = 1000;
    r.atime = time;
    r.mtime = time;
    r.ctime = time;
    return r;
}

InodeRecord file(std::string_view bytes, std::int64_t time) {
    InodeRecord r = record(S_IFREG | 0644, 1, time);
    r.object = ObjectId::of(bytes);
    r.size = bytes.size();
    return r;
}

// root/{build/{app, lib.a}, log}, with every inode's times set to `time` and inode numbers
// starting at `first`.
VolumeSnapshot volume(std::int64_t time, InodeNumber first = 2) {
    VolumeSnapshot v;
    v.name = "ws";
    v.inodes[k_root_inode] = record(S_IFDIR | 0755, 3, time);
    v.inodes[first] = record(S_IFDIR | 0755, 2, time);
    v.inodes[first + 1] = file("app bytes", time);
    v.inodes[first + 2] = file("archive bytes", time);
    v.inodes[first + 3] = file("log line\n", time);
    v.entries = {{k_root_inode, "build", {first, DT_DIR}},
                 {k_root_inode, "log", {first + 3, DT_REG}},
                 {first, "app", {first + 1, DT_REG}},
                 {first, "lib.a", {first + 2, DT_REG}}};
    return v;
}

}  // namespace

TEST_CASE("content_digest: the same tree written at other times, as other inodes, is the same",
          "[store][digest]") {
    auto earlier = volume(1'000'000'000);
    auto later = volume(2'000'000'000, 50);
    later.stamps.push_back({"src/main.c", {ObjectId::of("a checkout's file"), 17, 5}});
    CHECK(content_digest(earlier) == content_digest(later));
}

TEST_CASE("content_digest: any change to what a build wrote changes the digest",
          "[store][digest]") {
    const auto base = content_digest(volume(7));
    SECTION("a file's bytes") {
        auto v = volume(7);
        v.inodes[4] = file("other archive bytes", 7);
        CHECK(content_digest(v) != base);
    }
    SECTION("a mode") {
        auto v = volume(7);
        v.inodes[3].mode = S_IFREG | 0755;
        CHECK(content_digest(v) != base);
    }
    SECTION("an owner") {
        auto v = volume(7);
        v.inodes[5].uid = 0;
        CHECK(content_digest(v) != base);
    }
    SECTION("a name") {
        auto v = volume(7);
        v.entries[3].name = "libx.a";
        CHECK(content_digest(v) != base);
    }
    SECTION("a file moved to another directory") {
        auto v = volume(7);
        v.entries[1].parent = 2;  // log into build/
        std::sort(v.entries.begin(), v.entries.end(), [](const auto& a, const auto& b) {
            return std::tie(a.parent, a.name) < std::tie(b.parent, b.name);
        });
        CHECK(content_digest(v) != base);
    }
    SECTION("a second name: a hard link differs from a copy") {
        auto linked = volume(7);
        linked.inodes[3].nlink = 2;
        linked.entries.push_back({2, "app2", {3, DT_REG}});
        auto copied = volume(7);
        copied.inodes[9] = file("app bytes", 7);
        copied.entries.push_back({2, "app2", {9, DT_REG}});
        CHECK(content_digest(linked) != base);
        CHECK(content_digest(linked) != content_digest(copied));
    }
    SECTION("a whiteout") {
        auto v = volume(7);
        v.entries.push_back({k_root_inode, "old.c", {0, DT_WHT}});
        std::sort(v.entries.begin(), v.entries.end(), [](const auto& a, const auto& b) {
            return std::tie(a.parent, a.name) < std::tie(b.parent, b.name);
        });
        CHECK(content_digest(v) != base);
    }
    SECTION("a symlink's target") {
        auto v = volume(7);
        auto link = record(S_IFLNK | 0777, 1, 7);
        link.symlink_target = "build/app";
        v.inodes[9] = link;
        v.entries.push_back({k_root_inode, "run", {9, DT_LNK}});
        auto digest = content_digest(v);
        v.inodes[9].symlink_target = "build/lib.a";
        CHECK(content_digest(v) != digest);
        CHECK(digest != base);
    }
}

TEST_CASE("store_content_digest: names each volume, and refuses one the store does not hold",
          "[store][digest]") {
    TempDir tmp;
    auto store = Store::open(tmp / "store", Store::Mode::create_if_missing);
    REQUIRE(store);
    for (const char* name : {"a", "b"}) {
        REQUIRE(fbfs::VolumeTree::open(**store, name, 1000, 1000));
    }
    auto both = store_content_digest(**store, "");
    auto a = store_content_digest(**store, "a");
    auto b = store_content_digest(**store, "b");
    REQUIRE(both);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(*a != *b);  // empty volumes alike, but named differently
    CHECK(*both != *a);
    auto missing = store_content_digest(**store, "c");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == ENOENT);
    CHECK(missing.error().message.find("no volume c") != std::string::npos);
}

TEST_CASE("content_digest: an extended attribute, its value and the inode holding it count",
          "[store][digest]") {
    const auto base = content_digest(volume(7));
    auto with = [](InodeNumber ino, std::string name, std::string value) {
        auto v = volume(7);
        v.xattrs.push_back({ino, {std::move(name), std::move(value)}});
        return content_digest(v);
    };
    auto on_app = with(3, "user.origin", "ci");
    CHECK(on_app != base);
    CHECK(with(3, "user.origin", "laptop") != on_app);
    CHECK(with(3, "user.source", "ci") != on_app);
    CHECK(with(4, "user.origin", "ci") != on_app);
    CHECK(with(k_root_inode, "trusted.origin", "ci") != base);
    // The same attributes written at other times, as other inodes, are the same.
    auto later = volume(9, 50);
    later.xattrs.push_back({51, {"user.origin", "ci"}});
    CHECK(content_digest(later) == on_app);
}

TEST_CASE("store_content_digest: volumes that differ only in an attribute differ",
          "[store][digest]") {
    TempDir tmp;
    auto store = Store::open(tmp / "store", Store::Mode::create_if_missing);
    REQUIRE(store);
    auto tree = fbfs::VolumeTree::open(**store, "vol", 1000, 1000);
    REQUIRE(tree);
    InodeRecord dir;
    dir.mode = S_IFDIR | 0755;
    auto made = tree->create(k_root_inode, "dir", dir);
    REQUIRE(made);
    auto before = store_content_digest(**store, "vol");
    REQUIRE(before);
    REQUIRE(tree->set_xattr(made->ino, "user.mark", "1", fbfs::XattrMode::any));
    auto marked = store_content_digest(**store, "vol");
    REQUIRE(marked);
    CHECK(*marked != *before);
    REQUIRE(tree->set_xattr(made->ino, "user.mark", "2", fbfs::XattrMode::any));
    auto changed = store_content_digest(**store, "vol");
    REQUIRE(changed);
    CHECK(*changed != *marked);
    REQUIRE(tree->remove_xattr(made->ino, "user.mark"));
    auto removed = store_content_digest(**store, "vol");
    REQUIRE(removed);
    CHECK(*removed == *before);
}
