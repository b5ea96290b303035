#include "store/meta/volume_tree.h"

#include <dirent.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/meta/lmdb.h"
#include "store/meta/schema.h"
#include "store/meta/store.h"
#include "tests/support/must.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::DirentValue;
using fbfs::InodeNumber;
using fbfs::InodeRecord;
using fbfs::k_root_inode;
using fbfs::LmdbTxn;
using fbfs::ObjectId;
using fbfs::Result;
using fbfs::Store;
using fbfs::VolumeTree;
using fbfs::test::TempDir;

using fbfs::test::must;

namespace {

constexpr std::uint32_t k_uid = 1234;
constexpr std::uint32_t k_gid = 5678;

std::unique_ptr<Store> open_store(const fs::path& root) {
    auto store = Store::open(root, Store::Mode::create_if_missing);
    INFO((store ? std::string() : store.error().message));
    REQUIRE(store);
    return std::move(*store);
}

VolumeTree open_tree(Store& store, std::string_view name = "default") {
    auto tree = VolumeTree::open(store, name, k_uid, k_gid);
    INFO((tree ? std::string() : tree.error().message));
    REQUIRE(tree);
    return std::move(*tree);
}

// A store and its "default" volume in a fresh directory.
struct Fixture {
    TempDir tmp;
    std::unique_ptr<Store> store = open_store(tmp / "store");
    VolumeTree tree = open_tree(*store);
};

InodeRecord file_record(std::optional<ObjectId> object = std::nullopt) {
    InodeRecord r;
    r.mode = S_IFREG | 0644;
    r.uid = k_uid;
    r.gid = k_gid;
    r.object = object;
    return r;
}

InodeRecord dir_record() {
    InodeRecord r;
    r.mode = S_IFDIR | 0755;
    return r;
}

InodeRecord symlink_record(std::string target) {
    InodeRecord r;
    r.mode = S_IFLNK | 0777;
    r.size = target.size();
    r.symlink_target = std::move(target);
    return r;
}

// The error code of a call that must fail.
template <class T>
int error_of(const Result<T>& result) {
    REQUIRE_FALSE(result);
    return result.error().code;
}

InodeNumber create(VolumeTree& tree, InodeNumber parent, std::string_view name,
                   const InodeRecord& record) {
    return must(tree.create(parent, name, record)).ino;
}

InodeRecord get(const VolumeTree& tree, InodeNumber ino) {
    auto record = must(tree.get(ino));
    REQUIRE(record.has_value());
    return *record;
}

bool exists(const VolumeTree& tree, InodeNumber ino) {
    return must(tree.get(ino)).has_value();
}

std::optional<DirentValue> lookup(const VolumeTree& tree, InodeNumber parent,
                                  std::string_view name) {
    return must(tree.lookup(parent, name));
}

// The inode `name` names in `parent`, or 0 when there is no entry (or a whiteout).
InodeNumber ino_of(const VolumeTree& tree, InodeNumber parent, std::string_view name) {
    auto entry = lookup(tree, parent, name);
    return entry && !entry->is_whiteout() ? entry->ino : 0;
}

std::vector<std::string> names(const VolumeTree& tree, InodeNumber dir) {
    std::vector<std::string> out;
    for (const auto& entry : must(tree.list(dir))) {
        out.push_back(entry.name);
    }
    return out;
}

// The `refs` count of an object (0 when it has no row).
std::uint64_t refs(const Store& store, const ObjectId& id) {
    std::uint64_t count = 0;
    must(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        auto raw = must(txn.get(store.tables().refs, id.raw()));
        if (raw) {
            auto decoded = fbfs::decode_u64(*raw);
            REQUIRE(decoded.has_value());
            REQUIRE(*decoded > 0);  // a zero count is deleted, never stored
            count = *decoded;
        }
        return {};
    }));
    return count;
}

bool is_orphan_row(const Store& store, const VolumeTree& tree, InodeNumber ino) {
    bool present = false;
    must(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        present =
            must(txn.get(store.tables().orphans, fbfs::inode_key(tree.id(), ino))).has_value();
        return {};
    }));
    return present;
}

// How many dirents rows `dir` has, whiteouts included, read straight from the table.
std::size_t dirent_rows(const Store& store, const VolumeTree& tree, InodeNumber dir) {
    std::size_t rows = 0;
    must(store.env().read([&](LmdbTxn& txn) {
        return fbfs::for_each_prefix(txn, store.tables().dirents,
                                     fbfs::dirent_prefix(tree.id(), dir), [&](auto, auto) {
                                         ++rows;
                                         return true;
                                     });
    }));
    return rows;
}

const auto k_never_open = [](InodeNumber) { return false; };
const auto k_always_open = [](InodeNumber) { return true; };

ObjectId object(std::string_view content) {
    return ObjectId::of(content);
}

}  // namespace

// ---- opening ------------------------------------------------------------------------------------

TEST_CASE("VolumeTree: a new volume has an empty root directory owned by the caller",
          "[store][volume_tree]") {
    Fixture f;
    InodeRecord root = get(f.tree, k_root_inode);
    CHECK(root.mode == (S_IFDIR | 0755));
    CHECK(root.nlink == 2);
    CHECK(root.uid == k_uid);
    CHECK(root.gid == k_gid);
    CHECK(root.mtime > 0);
    CHECK(names(f.tree, k_root_inode).empty());
    CHECK(f.tree.name() == "default");
}

TEST_CASE("VolumeTree: reopening a volume keeps its tree and ignores the new owner",
          "[store][volume_tree]") {
    Fixture f;
    auto ino = create(f.tree, k_root_inode, "file", file_record());
    auto again = VolumeTree::open(*f.store, "default", 1, 1);
    REQUIRE(again);
    CHECK(again->id() == f.tree.id());
    CHECK(ino_of(*again, k_root_inode, "file") == ino);
    CHECK(get(*again, k_root_inode).uid == k_uid);
}

TEST_CASE("VolumeTree: open refuses an invalid volume name and creates nothing",
          "[store][volume_tree]") {
    Fixture f;
    auto bad = VolumeTree::open(*f.store, "../escape", 0, 0);
    CHECK(error_of(bad) == EINVAL);
    auto volumes = must(f.store->volumes());
    REQUIRE(volumes.size() == 1);
    CHECK(volumes[0].name == "default");
}

// ---- create, lookup, get, list ------------------------------------------------------------------

TEST_CASE("VolumeTree: created files, directories and symlinks can be looked up and listed",
          "[store][volume_tree]") {
    Fixture f;
    auto file = must(f.tree.create(k_root_inode, "file", file_record()));
    auto dir = must(f.tree.create(k_root_inode, "dir", dir_record()));
    auto link = must(f.tree.create(k_root_inode, "link", symlink_record("../target")));
    CHECK(file.record.nlink == 1);
    CHECK(dir.record.nlink == 2);
    CHECK(link.record.nlink == 1);
    CHECK(std::set<InodeNumber>{k_root_inode, file.ino, dir.ino, link.ino}.size() == 4);

    auto file_entry = lookup(f.tree, k_root_inode, "file");
    REQUIRE(file_entry);
    CHECK(file_entry->ino == file.ino);
    CHECK(file_entry->type == DT_REG);
    auto dir_entry = lookup(f.tree, k_root_inode, "dir");
    REQUIRE(dir_entry);
    CHECK(dir_entry->ino == dir.ino);
    CHECK(dir_entry->type == DT_DIR);
    auto link_entry = lookup(f.tree, k_root_inode, "link");
    REQUIRE(link_entry);
    CHECK(link_entry->type == DT_LNK);
    CHECK_FALSE(lookup(f.tree, k_root_inode, "missing").has_value());

    CHECK(get(f.tree, file.ino) == file.record);
    CHECK(get(f.tree, dir.ino).is_dir());
    CHECK(get(f.tree, link.ino).symlink_target == "../target");
    CHECK_FALSE(must(f.tree.get(9999)).has_value());

    CHECK(names(f.tree, k_root_inode) == std::vector<std::string>{"dir", "file", "link"});
    auto nested = create(f.tree, dir.ino, "nested", file_record());
    CHECK(names(f.tree, dir.ino) == std::vector<std::string>{"nested"});
    CHECK(ino_of(f.tree, dir.ino, "nested") == nested);
    CHECK_FALSE(lookup(f.tree, k_root_inode, "nested").has_value());
}

TEST_CASE("VolumeTree: create in a file or a missing directory fails", "[store][volume_tree]") {
    Fixture f;
    auto file = create(f.tree, k_root_inode, "file", file_record());
    CHECK(error_of(f.tree.create(file, "x", file_record())) == ENOTDIR);
    CHECK(error_of(f.tree.create(424242, "x", file_record())) == ENOENT);
    CHECK(names(f.tree, k_root_inode) == std::vector<std::string>{"file"});
}

TEST_CASE("VolumeTree: mkdir adds a link to its parent; a file does not", "[store][volume_tree]") {
    Fixture f;
    auto dir = create(f.tree, k_root_inode, "dir", dir_record());
    CHECK(get(f.tree, k_root_inode).nlink == 3);
    create(f.tree, dir, "sub", dir_record());
    CHECK(get(f.tree, dir).nlink == 3);
    CHECK(get(f.tree, k_root_inode).nlink == 3);
    create(f.tree, k_root_inode, "file", file_record());
    CHECK(get(f.tree, k_root_inode).nlink == 3);
}

TEST_CASE("VolumeTree: create changes the parent's mtime and ctime", "[store][volume_tree]") {
    Fixture f;
    must(f.tree.update(k_root_inode, [](InodeRecord& r) -> Result<void> {
        r.mtime = r.ctime = 1;
        return {};
    }));
    create(f.tree, k_root_inode, "file", file_record());
    auto root = get(f.tree, k_root_inode);
    CHECK(root.mtime > 1);
    CHECK(root.ctime > 1);
}

TEST_CASE("VolumeTree: creating an existing name is EEXIST and changes nothing",
          "[store][volume_tree]") {
    Fixture f;
    auto file = create(f.tree, k_root_inode, "name", file_record());
    auto nlink = get(f.tree, k_root_inode).nlink;
    CHECK(error_of(f.tree.create(k_root_inode, "name", file_record())) == EEXIST);
    CHECK(error_of(f.tree.create(k_root_inode, "name", dir_record())) == EEXIST);
    CHECK(ino_of(f.tree, k_root_inode, "name") == file);
    CHECK(get(f.tree, k_root_inode).nlink == nlink);
    CHECK(names(f.tree, k_root_inode).size() == 1);
}

// ---- remove -------------------------------------------------------------------------------------

TEST_CASE("VolumeTree: removing a file's last name deletes it", "[store][volume_tree]") {
    Fixture f;
    auto id = object("content");
    auto file = create(f.tree, k_root_inode, "file", file_record(id));
    CHECK(refs(*f.store, id) == 1);
    auto gone = must(f.tree.remove(k_root_inode, "file", false, false, false));
    CHECK(gone.ino == file);
    CHECK(gone.record.nlink == 0);
    CHECK_FALSE(exists(f.tree, file));
    CHECK_FALSE(lookup(f.tree, k_root_inode, "file").has_value());
    CHECK_FALSE(is_orphan_row(*f.store, f.tree, file));
    CHECK(refs(*f.store, id) == 0);
    CHECK(error_of(f.tree.remove(k_root_inode, "file", false, false, false)) == ENOENT);
}

TEST_CASE("VolumeTree: a removed file still open is an orphan until drop()",
          "[store][volume_tree]") {
    Fixture f;
    auto id = object("open content");
    auto file = create(f.tree, k_root_inode, "file", file_record(id));
    auto gone = must(f.tree.remove(k_root_inode, "file", false, false, true));
    CHECK(gone.record.nlink == 0);
    CHECK_FALSE(lookup(f.tree, k_root_inode, "file").has_value());
    REQUIRE(exists(f.tree, file));
    CHECK(get(f.tree, file).nlink == 0);
    CHECK(get(f.tree, file).object == id);
    CHECK(is_orphan_row(*f.store, f.tree, file));
    CHECK(refs(*f.store, id) == 1);

    must(f.tree.drop(file));
    CHECK_FALSE(exists(f.tree, file));
    CHECK_FALSE(is_orphan_row(*f.store, f.tree, file));
    CHECK(refs(*f.store, id) == 0);
    must(f.tree.drop(file));  // gone already: not an error
}

TEST_CASE("VolumeTree: drop() leaves an inode that still has a name", "[store][volume_tree]") {
    Fixture f;
    auto file = create(f.tree, k_root_inode, "file", file_record());
    must(f.tree.drop(file));
    CHECK(exists(f.tree, file));
    CHECK(ino_of(f.tree, k_root_inode, "file") == file);
}

TEST_CASE("VolumeTree: orphans left by a killed daemon are dropped at the next open",
          "[store][volume_tree]") {
    TempDir tmp;
    auto id = object("orphaned");
    InodeNumber orphan = 0;
    InodeNumber kept = 0;
    InodeNumber other_orphan = 0;
    {
        auto store = open_store(tmp / "store");
        auto tree = open_tree(*store);
        auto other = open_tree(*store, "other");
        orphan = create(tree, k_root_inode, "file", file_record(id));
        kept = create(tree, k_root_inode, "kept", file_record());
        other_orphan = create(other, k_root_inode, "file", file_record());
        must(tree.remove(k_root_inode, "file", false, false, true));
        must(other.remove(k_root_inode, "file", false, false, true));
        // The daemon dies here: no drop().
    }
    auto store = open_store(tmp / "store");
    auto tree = open_tree(*store);
    REQUIRE(exists(tree, orphan));
    CHECK(must(tree.drop_orphans()) == 1);
    CHECK_FALSE(exists(tree, orphan));
    CHECK_FALSE(is_orphan_row(*store, tree, orphan));
    CHECK(refs(*store, id) == 0);
    CHECK(exists(tree, kept));
    CHECK(must(tree.drop_orphans()) == 0);

    auto other = open_tree(*store, "other");
    CHECK(exists(other, other_orphan));
    CHECK(is_orphan_row(*store, other, other_orphan));
}

TEST_CASE("VolumeTree: rmdir removes an empty directory and its parent's link",
          "[store][volume_tree]") {
    Fixture f;
    auto dir = create(f.tree, k_root_inode, "dir", dir_record());
    REQUIRE(get(f.tree, k_root_inode).nlink == 3);
    auto gone = must(f.tree.remove(k_root_inode, "dir", true, false, false));
    CHECK(gone.ino == dir);
    CHECK(gone.record.nlink == 0);
    CHECK_FALSE(exists(f.tree, dir));
    CHECK(get(f.tree, k_root_inode).nlink == 2);
    CHECK(names(f.tree, k_root_inode).empty());
}

TEST_CASE("VolumeTree: rmdir and unlink follow POSIX for the wrong kind of entry",
          "[store][volume_tree]") {
    Fixture f;
    auto dir = create(f.tree, k_root_inode, "dir", dir_record());
    auto inner = create(f.tree, dir, "inner", file_record());
    auto file = create(f.tree, k_root_inode, "file", file_record());

    CHECK(error_of(f.tree.remove(k_root_inode, "dir", true, false, false)) == ENOTEMPTY);
    CHECK(error_of(f.tree.remove(k_root_inode, "file", true, false, false)) == ENOTDIR);
    CHECK(error_of(f.tree.remove(k_root_inode, "dir", false, false, false)) == EISDIR);
    CHECK(error_of(f.tree.remove(file, "x", false, false, false)) == ENOTDIR);

    CHECK(ino_of(f.tree, k_root_inode, "dir") == dir);
    CHECK(ino_of(f.tree, dir, "inner") == inner);
    CHECK(ino_of(f.tree, k_root_inode, "file") == file);
    CHECK(get(f.tree, dir).nlink == 2);
    CHECK(get(f.tree, k_root_inode).nlink == 3);
}

// ---- hard links ---------------------------------------------------------------------------------

TEST_CASE("VolumeTree: a hard link shares the inode; removing one name keeps the other",
          "[store][volume_tree]") {
    Fixture f;
    auto id = object("linked");
    auto dir = create(f.tree, k_root_inode, "dir", dir_record());
    auto file = create(f.tree, k_root_inode, "a", file_record(id));
    auto linked = must(f.tree.link(file, dir, "b"));
    CHECK(linked.nlink == 2);
    CHECK(get(f.tree, file).nlink == 2);
    auto entry = lookup(f.tree, dir, "b");
    REQUIRE(entry);
    CHECK(entry->ino == file);
    CHECK(entry->type == DT_REG);
    CHECK(refs(*f.store, id) == 1);  // refs count inodes, not names

    // A change through one name shows through the other.
    must(f.tree.update(file, [](InodeRecord& r) -> Result<void> {
        r.mode = S_IFREG | 0600;
        return {};
    }));
    CHECK(get(f.tree, ino_of(f.tree, dir, "b")).mode == (S_IFREG | 0600));

    auto gone = must(f.tree.remove(k_root_inode, "a", false, false, false));
    CHECK(gone.record.nlink == 1);
    CHECK(exists(f.tree, file));
    CHECK(get(f.tree, file).nlink == 1);
    CHECK(ino_of(f.tree, dir, "b") == file);
    CHECK(refs(*f.store, id) == 1);
    CHECK_FALSE(is_orphan_row(*f.store, f.tree, file));
}

TEST_CASE("VolumeTree: link refuses directories and existing names", "[store][volume_tree]") {
    Fixture f;
    auto dir = create(f.tree, k_root_inode, "dir", dir_record());
    auto file = create(f.tree, k_root_inode, "file", file_record());
    CHECK(error_of(f.tree.link(dir, k_root_inode, "dir2")) == EPERM);
    CHECK(error_of(f.tree.link(file, k_root_inode, "dir")) == EEXIST);
    CHECK(error_of(f.tree.link(file, file, "x")) == ENOTDIR);
    CHECK(error_of(f.tree.link(424242, k_root_inode, "x")) == ENOENT);
    CHECK(get(f.tree, file).nlink == 1);
    CHECK(names(f.tree, k_root_inode) == std::vector<std::string>{"dir", "file"});
}

// ---- rename -------------------------------------------------------------------------------------

TEST_CASE("VolumeTree: rename moves a name within a directory", "[store][volume_tree]") {
    Fixture f;
    auto file = create(f.tree, k_root_inode, "old", file_record());
    auto replaced = must(f.tree.rename(k_root_inode, "old", k_root_inode, "new", 0, k_never_open));
    CHECK_FALSE(replaced.has_value());
    CHECK(ino_of(f.tree, k_root_inode, "new") == file);
    CHECK_FALSE(lookup(f.tree, k_root_inode, "old").has_value());
    CHECK(get(f.tree, file).nlink == 1);
    CHECK(error_of(f.tree.rename(k_root_inode, "old", k_root_inode, "x", 0, k_never_open)) ==
          ENOENT);
}

TEST_CASE("VolumeTree: renaming a directory across directories moves its '..' link",
          "[store][volume_tree]") {
    Fixture f;
    auto a = create(f.tree, k_root_inode, "a", dir_record());
    auto b = create(f.tree, k_root_inode, "b", dir_record());
    auto moved = create(f.tree, a, "moved", dir_record());
    auto file = create(f.tree, a, "file", file_record());
    REQUIRE(get(f.tree, a).nlink == 3);
    REQUIRE(get(f.tree, b).nlink == 2);

    must(f.tree.rename(a, "moved", b, "moved", 0, k_never_open));
    CHECK(get(f.tree, a).nlink == 2);
    CHECK(get(f.tree, b).nlink == 3);
    CHECK(ino_of(f.tree, b, "moved") == moved);
    CHECK_FALSE(lookup(f.tree, a, "moved").has_value());

    must(f.tree.rename(a, "file", b, "file", 0, k_never_open));
    CHECK(get(f.tree, a).nlink == 2);
    CHECK(get(f.tree, b).nlink == 3);
    CHECK(ino_of(f.tree, b, "file") == file);
    CHECK(get(f.tree, k_root_inode).nlink == 4);
}

TEST_CASE("VolumeTree: rename over a file replaces it and returns the replaced inode",
          "[store][volume_tree]") {
    Fixture f;
    auto old_id = object("old");
    auto new_id = object("new");
    auto src = create(f.tree, k_root_inode, "src", file_record(new_id));
    auto dst = create(f.tree, k_root_inode, "dst", file_record(old_id));
    auto replaced = must(f.tree.rename(k_root_inode, "src", k_root_inode, "dst", 0, k_never_open));
    REQUIRE(replaced.has_value());
    CHECK(replaced->ino == dst);
    CHECK(replaced->record.nlink == 0);
    CHECK(ino_of(f.tree, k_root_inode, "dst") == src);
    CHECK_FALSE(lookup(f.tree, k_root_inode, "src").has_value());
    CHECK_FALSE(exists(f.tree, dst));
    CHECK(refs(*f.store, old_id) == 0);
    CHECK(refs(*f.store, new_id) == 1);
}

TEST_CASE("VolumeTree: rename over a file that is still open leaves it an orphan",
          "[store][volume_tree]") {
    Fixture f;
    create(f.tree, k_root_inode, "src", file_record());
    auto dst = create(f.tree, k_root_inode, "dst", file_record(object("dst")));
    std::vector<InodeNumber> asked;
    auto replaced =
        must(f.tree.rename(k_root_inode, "src", k_root_inode, "dst", 0, [&](InodeNumber ino) {
            asked.push_back(ino);
            return true;
        }));
    REQUIRE(replaced.has_value());
    CHECK(replaced->ino == dst);
    CHECK(asked == std::vector<InodeNumber>{dst});
    REQUIRE(exists(f.tree, dst));
    CHECK(get(f.tree, dst).nlink == 0);
    CHECK(is_orphan_row(*f.store, f.tree, dst));
    CHECK(refs(*f.store, object("dst")) == 1);
    CHECK(must(f.tree.drop_orphans()) == 1);
    CHECK(refs(*f.store, object("dst")) == 0);
}

TEST_CASE("VolumeTree: rename with RENAME_NOREPLACE onto an existing name is EEXIST",
          "[store][volume_tree]") {
    Fixture f;
    auto src = create(f.tree, k_root_inode, "src", file_record());
    auto dst = create(f.tree, k_root_inode, "dst", file_record());
    CHECK(error_of(f.tree.rename(k_root_inode, "src", k_root_inode, "dst", RENAME_NOREPLACE,
                                 k_never_open)) == EEXIST);
    CHECK(ino_of(f.tree, k_root_inode, "src") == src);
    CHECK(ino_of(f.tree, k_root_inode, "dst") == dst);
    must(f.tree.rename(k_root_inode, "src", k_root_inode, "free", RENAME_NOREPLACE, k_never_open));
    CHECK(ino_of(f.tree, k_root_inode, "free") == src);
}

TEST_CASE("VolumeTree: RENAME_EXCHANGE swaps two names, moving a directory's link",
          "[store][volume_tree]") {
    Fixture f;
    auto a = create(f.tree, k_root_inode, "a", dir_record());
    auto b = create(f.tree, k_root_inode, "b", dir_record());
    auto dir = create(f.tree, a, "x", dir_record());
    auto file = create(f.tree, b, "y", file_record());
    REQUIRE(get(f.tree, a).nlink == 3);
    REQUIRE(get(f.tree, b).nlink == 2);

    auto replaced = must(f.tree.rename(a, "x", b, "y", RENAME_EXCHANGE, k_never_open));
    CHECK_FALSE(replaced.has_value());
    auto x = lookup(f.tree, a, "x");
    REQUIRE(x);
    CHECK(x->ino == file);
    CHECK(x->type == DT_REG);
    auto y = lookup(f.tree, b, "y");
    REQUIRE(y);
    CHECK(y->ino == dir);
    CHECK(y->type == DT_DIR);
    CHECK(get(f.tree, a).nlink == 2);
    CHECK(get(f.tree, b).nlink == 3);
    CHECK(exists(f.tree, file));
    CHECK(exists(f.tree, dir));

    CHECK(error_of(f.tree.rename(a, "x", b, "none", RENAME_EXCHANGE, k_never_open)) == ENOENT);
}

TEST_CASE("VolumeTree: RENAME_EXCHANGE within one directory swaps the entries",
          "[store][volume_tree]") {
    Fixture f;
    auto dir = create(f.tree, k_root_inode, "d", dir_record());
    auto file = create(f.tree, k_root_inode, "f", file_record());
    must(f.tree.rename(k_root_inode, "d", k_root_inode, "f", RENAME_EXCHANGE, k_never_open));
    CHECK(ino_of(f.tree, k_root_inode, "d") == file);
    CHECK(ino_of(f.tree, k_root_inode, "f") == dir);
    CHECK(get(f.tree, k_root_inode).nlink == 3);
}

TEST_CASE("VolumeTree: rename refuses to replace a non-empty directory or mix kinds",
          "[store][volume_tree]") {
    Fixture f;
    auto src_dir = create(f.tree, k_root_inode, "src_dir", dir_record());
    auto full = create(f.tree, k_root_inode, "full", dir_record());
    create(f.tree, full, "inner", file_record());
    auto file = create(f.tree, k_root_inode, "file", file_record());

    CHECK(error_of(f.tree.rename(k_root_inode, "src_dir", k_root_inode, "full", 0, k_never_open)) ==
          ENOTEMPTY);
    CHECK(error_of(f.tree.rename(k_root_inode, "file", k_root_inode, "full", 0, k_never_open)) ==
          EISDIR);
    CHECK(error_of(f.tree.rename(k_root_inode, "src_dir", k_root_inode, "file", 0, k_never_open)) ==
          ENOTDIR);

    CHECK(ino_of(f.tree, k_root_inode, "src_dir") == src_dir);
    CHECK(ino_of(f.tree, k_root_inode, "full") == full);
    CHECK(ino_of(f.tree, k_root_inode, "file") == file);
    CHECK(names(f.tree, full) == std::vector<std::string>{"inner"});
    CHECK(get(f.tree, k_root_inode).nlink == 4);
}

TEST_CASE("VolumeTree: rename of a directory over an empty one replaces it",
          "[store][volume_tree]") {
    Fixture f;
    auto a = create(f.tree, k_root_inode, "a", dir_record());
    auto b = create(f.tree, k_root_inode, "b", dir_record());
    auto src = create(f.tree, a, "src", dir_record());
    auto empty = create(f.tree, b, "empty", dir_record());
    auto replaced = must(f.tree.rename(a, "src", b, "empty", 0, k_never_open));
    REQUIRE(replaced.has_value());
    CHECK(replaced->ino == empty);
    CHECK_FALSE(exists(f.tree, empty));
    CHECK(ino_of(f.tree, b, "empty") == src);
    CHECK(get(f.tree, a).nlink == 2);
    CHECK(get(f.tree, b).nlink == 3);
}

TEST_CASE("VolumeTree: renaming one hard link onto another does nothing", "[store][volume_tree]") {
    Fixture f;
    auto file = create(f.tree, k_root_inode, "a", file_record());
    must(f.tree.link(file, k_root_inode, "b"));
    auto replaced = must(f.tree.rename(k_root_inode, "a", k_root_inode, "b", 0, k_never_open));
    CHECK_FALSE(replaced.has_value());
    CHECK(ino_of(f.tree, k_root_inode, "a") == file);
    CHECK(ino_of(f.tree, k_root_inode, "b") == file);
    CHECK(get(f.tree, file).nlink == 2);
}

// ---- whiteouts ----------------------------------------------------------------------------------

TEST_CASE("VolumeTree: remove with leave_whiteout leaves a whiteout that create replaces",
          "[store][volume_tree]") {
    Fixture f;
    auto file = create(f.tree, k_root_inode, "name", file_record());
    must(f.tree.remove(k_root_inode, "name", false, true, false));
    CHECK_FALSE(exists(f.tree, file));
    auto entry = lookup(f.tree, k_root_inode, "name");
    REQUIRE(entry.has_value());
    CHECK(entry->is_whiteout());
    CHECK(entry->type == DT_WHT);
    CHECK(entry->ino == 0);
    auto listed = must(f.tree.list(k_root_inode));
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].name == "name");
    CHECK(listed[0].value.is_whiteout());
    // A whiteout is not a file: removing it again is ENOENT.
    CHECK(error_of(f.tree.remove(k_root_inode, "name", false, false, false)) == ENOENT);

    auto again = create(f.tree, k_root_inode, "name", dir_record());
    auto replaced = lookup(f.tree, k_root_inode, "name");
    REQUIRE(replaced.has_value());
    CHECK_FALSE(replaced->is_whiteout());
    CHECK(replaced->ino == again);
    CHECK(get(f.tree, k_root_inode).nlink == 3);
}

TEST_CASE("VolumeTree: removing a directory with leave_whiteout drops the parent's link",
          "[store][volume_tree]") {
    Fixture f;
    create(f.tree, k_root_inode, "dir", dir_record());
    must(f.tree.remove(k_root_inode, "dir", true, true, false));
    CHECK(get(f.tree, k_root_inode).nlink == 2);
    auto entry = lookup(f.tree, k_root_inode, "dir");
    REQUIRE(entry.has_value());
    CHECK(entry->is_whiteout());
}

TEST_CASE("VolumeTree: add_whiteout puts a whiteout only where there is no entry",
          "[store][volume_tree]") {
    Fixture f;
    create(f.tree, k_root_inode, "file", file_record());
    CHECK(error_of(f.tree.add_whiteout(k_root_inode, "file")) == EEXIST);
    must(f.tree.add_whiteout(k_root_inode, "hidden"));
    must(f.tree.add_whiteout(k_root_inode, "hidden"));  // over a whiteout: fine
    auto entry = lookup(f.tree, k_root_inode, "hidden");
    REQUIRE(entry.has_value());
    CHECK(entry->is_whiteout());
    CHECK(ino_of(f.tree, k_root_inode, "file") != 0);
}

TEST_CASE("VolumeTree: rmdir of a directory holding only whiteouts works and drops them",
          "[store][volume_tree]") {
    Fixture f;
    auto dir = create(f.tree, k_root_inode, "dir", dir_record());
    create(f.tree, dir, "a", file_record());
    must(f.tree.remove(dir, "a", false, true, false));
    must(f.tree.add_whiteout(dir, "b"));
    REQUIRE(dirent_rows(*f.store, f.tree, dir) == 2);

    must(f.tree.remove(k_root_inode, "dir", true, false, false));
    CHECK_FALSE(exists(f.tree, dir));
    CHECK(dirent_rows(*f.store, f.tree, dir) == 0);
    CHECK(get(f.tree, k_root_inode).nlink == 2);
}

TEST_CASE("VolumeTree: rename onto a whiteout takes its place", "[store][volume_tree]") {
    Fixture f;
    auto file = create(f.tree, k_root_inode, "file", file_record());
    must(f.tree.add_whiteout(k_root_inode, "hidden"));
    auto replaced = must(f.tree.rename(k_root_inode, "file", k_root_inode, "hidden",
                                       RENAME_NOREPLACE, k_never_open));
    CHECK_FALSE(replaced.has_value());
    CHECK(ino_of(f.tree, k_root_inode, "hidden") == file);
    CHECK(names(f.tree, k_root_inode) == std::vector<std::string>{"hidden"});
}

// ---- update and object references ---------------------------------------------------------------

TEST_CASE("VolumeTree: update() changes fields and moves object references",
          "[store][volume_tree]") {
    Fixture f;
    auto first = object("first");
    auto second = object("second");
    auto file = create(f.tree, k_root_inode, "file", file_record());
    CHECK(refs(*f.store, first) == 0);

    auto written = must(f.tree.update(file, [&](InodeRecord& r) -> Result<void> {
        r.object = first;
        r.size = 5;
        r.mtime = 42;
        return {};
    }));
    CHECK(written.object == first);
    auto stored = get(f.tree, file);
    CHECK(stored.size == 5);
    CHECK(stored.mtime == 42);
    CHECK(stored == written);
    CHECK(refs(*f.store, first) == 1);

    must(f.tree.update(file, [&](InodeRecord& r) -> Result<void> {
        r.object = second;
        return {};
    }));
    CHECK(refs(*f.store, first) == 0);
    CHECK(refs(*f.store, second) == 1);

    must(f.tree.update(file, [&](InodeRecord& r) -> Result<void> {
        r.size = 6;  // content unchanged: the count must not move
        return {};
    }));
    CHECK(refs(*f.store, second) == 1);

    must(f.tree.update(file, [&](InodeRecord& r) -> Result<void> {
        r.object.reset();
        r.size = 0;
        return {};
    }));
    CHECK(refs(*f.store, second) == 0);
    CHECK_FALSE(get(f.tree, file).object.has_value());
}

TEST_CASE("VolumeTree: two inodes with the same content count two references",
          "[store][volume_tree]") {
    Fixture f;
    auto id = object("shared");
    auto a = create(f.tree, k_root_inode, "a", file_record(id));
    create(f.tree, k_root_inode, "b", file_record());
    must(f.tree.update(ino_of(f.tree, k_root_inode, "b"), [&](InodeRecord& r) -> Result<void> {
        r.object = id;
        return {};
    }));
    CHECK(refs(*f.store, id) == 2);
    must(f.tree.remove(k_root_inode, "b", false, false, false));
    CHECK(refs(*f.store, id) == 1);
    CHECK(get(f.tree, a).object == id);
    must(f.tree.remove(k_root_inode, "a", false, false, false));
    CHECK(refs(*f.store, id) == 0);
}

TEST_CASE("VolumeTree: an update() whose change fails writes nothing", "[store][volume_tree]") {
    Fixture f;
    auto file = create(f.tree, k_root_inode, "file", file_record());
    auto failed = f.tree.update(file, [&](InodeRecord& r) -> Result<void> {
        r.object = object("never");
        r.size = 99;
        return fbfs::make_error(EFBIG, "too big");
    });
    CHECK(error_of(failed) == EFBIG);
    CHECK(get(f.tree, file).size == 0);
    CHECK_FALSE(get(f.tree, file).object.has_value());
    CHECK(refs(*f.store, object("never")) == 0);
    CHECK(error_of(f.tree.update(424242, [](InodeRecord&) -> Result<void> { return {}; })) ==
          ENOENT);
}

// ---- inode numbers and volumes ------------------------------------------------------------------

TEST_CASE("VolumeTree: inode numbers keep increasing across reopening and never repeat",
          "[store][volume_tree]") {
    TempDir tmp;
    std::vector<InodeNumber> seen{k_root_inode};
    // Creates five files in `tree`; each number must exceed every number `tree` gave before it
    // and, when `above_all`, every number seen so far.
    auto create_some = [&](VolumeTree& tree, const std::string& prefix, bool above_all) {
        InodeNumber last = above_all ? *std::max_element(seen.begin(), seen.end()) : 0;
        for (int i = 0; i < 5; ++i) {
            auto ino = create(tree, k_root_inode, prefix + std::to_string(i), file_record());
            CHECK(ino > last);
            last = ino;
            seen.push_back(ino);
        }
    };
    {
        auto store = open_store(tmp / "store");
        auto tree = open_tree(*store);
        create_some(tree, "first", true);
        // A second VolumeTree of the same volume reserves numbers of its own.
        auto again = open_tree(*store);
        create_some(again, "second", true);
        create_some(tree, "third", false);
        must(tree.remove(k_root_inode, "third4", false, false, false));
        CHECK(error_of(tree.create(k_root_inode, "first0", file_record())) == EEXIST);
    }
    {
        auto store = open_store(tmp / "store");
        auto tree = open_tree(*store);
        create_some(tree, "fourth", true);
    }
    CHECK(std::set<InodeNumber>(seen.begin(), seen.end()).size() == seen.size());
}

TEST_CASE("VolumeTree: volumes of one store are independent", "[store][volume_tree]") {
    Fixture f;
    auto other = open_tree(*f.store, "other");
    CHECK(other.id() != f.tree.id());
    CHECK(get(other, k_root_inode).nlink == 2);

    auto a = create(f.tree, k_root_inode, "same", file_record(object("a")));
    auto b = create(other, k_root_inode, "same", dir_record());
    CHECK(lookup(f.tree, k_root_inode, "same")->type == DT_REG);
    CHECK(lookup(other, k_root_inode, "same")->type == DT_DIR);
    CHECK(get(f.tree, k_root_inode).nlink == 2);
    CHECK(get(other, k_root_inode).nlink == 3);
    // Each volume numbers its own inodes, so the same number names a file in one and a
    // directory in the other.
    REQUIRE(a == b);
    CHECK(get(f.tree, a).is_reg());
    CHECK(get(other, b).is_dir());

    must(f.tree.remove(k_root_inode, "same", false, false, false));
    CHECK_FALSE(lookup(f.tree, k_root_inode, "same").has_value());
    CHECK(ino_of(other, k_root_inode, "same") == b);
    CHECK(exists(other, b));
    CHECK(names(other, k_root_inode) == std::vector<std::string>{"same"});
    CHECK(names(f.tree, k_root_inode).empty());
}

TEST_CASE("VolumeTree: threads creating and removing at once keep the tree consistent",
          "[store][volume_tree]") {
    Fixture f;
    constexpr int k_threads = 4;
    constexpr int k_files = 100;
    std::vector<InodeNumber> dirs;
    for (int t = 0; t < k_threads; ++t) {
        dirs.push_back(create(f.tree, k_root_inode, "d" + std::to_string(t), dir_record()));
    }
    // Workers report by values: Catch2 v2 assertions are not thread-safe.
    std::vector<std::vector<InodeNumber>> made(k_threads);
    std::vector<std::string> errors(k_threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < k_threads; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; i < k_files && errors[t].empty(); ++i) {
                auto name = "f" + std::to_string(i);
                auto made_one = f.tree.create(dirs[t], name, file_record(object(name)));
                auto sub =
                    f.tree.create(k_root_inode, "s" + std::to_string(t) + "_" + name, dir_record());
                auto gone = sub ? f.tree.remove(k_root_inode, "s" + std::to_string(t) + "_" + name,
                                                true, false, false)
                                : Result<fbfs::Unlinked>(std::unexpected(sub.error()));
                if (!made_one || !gone) {
                    errors[t] = (made_one ? gone.error() : made_one.error()).message;
                } else {
                    made[t].push_back(made_one->ino);
                }
            }
        });
    }
    for (auto& worker : workers) {
        worker.join();
    }
    std::set<InodeNumber> all;
    for (int t = 0; t < k_threads; ++t) {
        INFO("thread " << t << ": " << errors[t]);
        CHECK(errors[t].empty());
        CHECK(made[t].size() == k_files);
        CHECK(names(f.tree, dirs[t]).size() == k_files);
        all.insert(made[t].begin(), made[t].end());
    }
    CHECK(all.size() == std::size_t{k_threads} * k_files);
    CHECK(get(f.tree, k_root_inode).nlink == 2 + k_threads);
    CHECK(names(f.tree, k_root_inode).size() == k_threads);
    // Each thread's files share names with the others', so each object has k_threads inodes.
    CHECK(refs(*f.store, object("f0")) == k_threads);
}
