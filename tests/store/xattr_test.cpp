// Extended attributes in a volume (store/meta/xattr.h and VolumeTree's attribute calls): the names and
// room a volume keeps, setxattr(2)'s modes, ctime, and rows that go with their inode.
#include "store/meta/xattr.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "store/meta/store.h"
#include "store/meta/volume_tree.h"
#include "tests/support/must.h"
#include "tests/support/temp_dir.h"

using fbfs::InodeNumber;
using fbfs::InodeRecord;
using fbfs::k_root_inode;
using fbfs::LmdbTxn;
using fbfs::Result;
using fbfs::Store;
using fbfs::VolumeTree;
using fbfs::Xattr;
using fbfs::XattrMode;
using fbfs::test::must;
using fbfs::test::TempDir;

namespace {

struct Fixture {
    TempDir tmp;
    std::unique_ptr<Store> store = must(Store::open(tmp / "store", Store::Mode::create_if_missing));
    VolumeTree tree = must(VolumeTree::open(*store, "default", 0, 0));

    InodeNumber make(std::string_view name, std::uint32_t mode, std::vector<Xattr> xattrs = {}) {
        InodeRecord r;
        r.mode = mode;
        if (S_ISLNK(mode)) {
            r.symlink_target = "target";
            r.size = r.symlink_target.size();
        }
        VolumeTree::CreateOptions options;
        options.xattrs = std::move(xattrs);
        return must(tree.create(k_root_inode, name, r, options)).ino;
    }

    // How many rows the `xattrs` table holds, all volumes together.
    std::size_t rows() const {
        std::size_t count = 0;
        must(store->env().read([&](LmdbTxn& txn) {
            return fbfs::for_each_prefix(txn, store->tables().xattrs, "", [&](auto, auto) {
                ++count;
                return true;
            });
        }));
        return count;
    }
};

template <class T>
int error_of(const Result<T>& result) {
    REQUIRE_FALSE(result);
    return result.error().code;
}

std::vector<std::string> names(const std::vector<Xattr>& xattrs) {
    std::vector<std::string> out;
    for (const auto& x : xattrs) {
        out.push_back(x.name);
    }
    return out;
}

}  // namespace

TEST_CASE("Xattr names: user., trusted. and security. with a name after, at most 255 bytes",
          "[store][xattr]") {
    using fbfs::is_stored_xattr_name;
    CHECK(is_stored_xattr_name("user.a"));
    CHECK(is_stored_xattr_name("trusted.overlay.opaque"));
    CHECK(is_stored_xattr_name("security.capability"));
    CHECK(is_stored_xattr_name("user." + std::string(250, 'n')));
    CHECK_FALSE(is_stored_xattr_name("user." + std::string(251, 'n')));
    CHECK_FALSE(is_stored_xattr_name("user."));
    CHECK_FALSE(is_stored_xattr_name("system.posix_acl_access"));
    CHECK_FALSE(is_stored_xattr_name("users.a"));
    CHECK_FALSE(is_stored_xattr_name(""));
    CHECK_FALSE(is_stored_xattr_name(std::string("user.a\0b", 8)));
}

TEST_CASE("Xattr names: trusted. and security. ones need privilege to set, user. ones do not",
          "[store][xattr]") {
    using fbfs::is_privileged_xattr_name;
    CHECK(is_privileged_xattr_name("trusted.overlay.opaque"));
    CHECK(is_privileged_xattr_name("security.capability"));
    CHECK(is_privileged_xattr_name("security.selinux"));
    CHECK_FALSE(is_privileged_xattr_name("user.trusted.a"));
    CHECK_FALSE(is_privileged_xattr_name("trustedx.a"));
}

TEST_CASE("VolumeTree: an attribute is set, read, listed in name order and removed",
          "[store][xattr]") {
    Fixture f;
    auto ino = f.make("f", S_IFREG | 0644);
    CHECK_FALSE(must(f.tree.xattr(ino, "user.b")).has_value());
    must(f.tree.set_xattr(ino, "user.b", "2", XattrMode::any));
    must(f.tree.set_xattr(ino, "user.a", std::string("\0\1", 2), XattrMode::any));
    must(f.tree.set_xattr(ino, "trusted.c", "", XattrMode::any));
    CHECK(must(f.tree.xattr(ino, "user.b")) == "2");
    CHECK(must(f.tree.xattr(ino, "trusted.c")) == "");
    CHECK(names(must(f.tree.xattrs(ino))) ==
          std::vector<std::string>{"trusted.c", "user.a", "user.b"});
    must(f.tree.remove_xattr(ino, "user.a"));
    CHECK(names(must(f.tree.xattrs(ino))) == std::vector<std::string>{"trusted.c", "user.b"});
    CHECK(error_of(f.tree.remove_xattr(ino, "user.a")) == ENODATA);
}

TEST_CASE("VolumeTree: XATTR_CREATE and XATTR_REPLACE refuse as setxattr(2) does",
          "[store][xattr]") {
    Fixture f;
    auto ino = f.make("f", S_IFREG | 0644);
    CHECK(error_of(f.tree.set_xattr(ino, "user.a", "1", XattrMode::replace)) == ENODATA);
    must(f.tree.set_xattr(ino, "user.a", "1", XattrMode::create));
    CHECK(error_of(f.tree.set_xattr(ino, "user.a", "2", XattrMode::create)) == EEXIST);
    must(f.tree.set_xattr(ino, "user.a", "3", XattrMode::replace));
    CHECK(must(f.tree.xattr(ino, "user.a")) == "3");
}

TEST_CASE(
    "VolumeTree: an inode's attributes fit in 4 KiB, and a full inode is ENOSPC without "
    "touching the disk's reserve",
    "[store][xattr]") {
    Fixture f;
    auto ino = f.make("f", S_IFREG | 0644);
    auto reserve = f.tmp / "store" / "meta" / "reserve";
    bool had_reserve = std::filesystem::exists(reserve);
    // 4096 bytes exactly: name 6 + value 4074 + 16.
    must(f.tree.set_xattr(ino, "user.a", std::string(4074, 'a'), XattrMode::any));
    CHECK(error_of(f.tree.set_xattr(ino, "user.b", "", XattrMode::any)) == ENOSPC);
    CHECK(error_of(f.tree.set_xattr(ino, "user.a", std::string(4075, 'a'), XattrMode::any)) ==
          ENOSPC);
    CHECK(std::filesystem::exists(reserve) == had_reserve);
    // Replacing a value frees its old room first.
    must(f.tree.set_xattr(ino, "user.a", std::string(10, 'a'), XattrMode::any));
    must(f.tree.set_xattr(ino, "user.b", std::string(4000, 'b'), XattrMode::any));
    CHECK(error_of(f.tree.xattr(999999, "user.a")) == ENOENT);
    CHECK(error_of(f.tree.set_xattr(999999, "user.a", "", XattrMode::any)) == ENOENT);
}

TEST_CASE(
    "VolumeTree: user. attributes only on regular files and directories; names it does not "
    "store are EINVAL",
    "[store][xattr]") {
    Fixture f;
    auto link = f.make("link", S_IFLNK | 0777);
    auto dir = f.make("dir", S_IFDIR | 0755);
    CHECK(error_of(f.tree.set_xattr(link, "user.a", "1", XattrMode::any)) == EPERM);
    must(f.tree.set_xattr(link, "trusted.a", "1", XattrMode::any));
    must(f.tree.set_xattr(dir, "user.a", "1", XattrMode::any));
    CHECK(error_of(f.tree.set_xattr(dir, "system.posix_acl_default", "1", XattrMode::any)) ==
          EINVAL);
    InodeRecord fifo;
    fifo.mode = S_IFIFO | 0644;
    VolumeTree::CreateOptions options;
    options.xattrs = {{"user.a", "1"}};
    CHECK(error_of(f.tree.create(k_root_inode, "fifo", fifo, options)) == EPERM);
    CHECK_FALSE(must(f.tree.lookup(k_root_inode, "fifo")).has_value());
}

TEST_CASE("VolumeTree: setting or removing an attribute moves ctime only", "[store][xattr]") {
    Fixture f;
    auto ino = f.make("f", S_IFREG | 0644);
    auto before = *must(f.tree.get(ino));
    auto set = must(f.tree.set_xattr(ino, "user.a", "1", XattrMode::any));
    CHECK(set.ctime > before.ctime);
    CHECK(set.mtime == before.mtime);
    auto removed = must(f.tree.remove_xattr(ino, "user.a"));
    CHECK(removed.ctime >= set.ctime);
    CHECK(*must(f.tree.get(ino)) == removed);
}

TEST_CASE("VolumeTree: a created inode starts with the attributes it is given, all or none",
          "[store][xattr]") {
    Fixture f;
    auto ino = f.make("copied", S_IFREG | 0644, {{"user.a", "1"}, {"security.b", "2"}});
    CHECK(must(f.tree.xattrs(ino)) == std::vector<Xattr>{{"security.b", "2"}, {"user.a", "1"}});
    InodeRecord r;
    r.mode = S_IFREG | 0644;
    VolumeTree::CreateOptions options;
    options.xattrs = {{"user.a", std::string(3000, 'a')}, {"user.b", std::string(3000, 'b')}};
    CHECK(error_of(f.tree.create(k_root_inode, "too-much", r, options)) == ENOSPC);
    CHECK_FALSE(must(f.tree.lookup(k_root_inode, "too-much")).has_value());
    CHECK(f.rows() == 2);
}

TEST_CASE("VolumeTree: an inode's attributes go with its last name, or with its last close",
          "[store][xattr]") {
    Fixture f;
    auto ino = f.make("f", S_IFREG | 0644, {{"user.a", "1"}});
    must(f.tree.link(ino, k_root_inode, "g"));
    must(f.tree.remove(k_root_inode, "f", false, false, false));
    CHECK(must(f.tree.xattr(ino, "user.a")) == "1");  // a name is left
    must(f.tree.remove(k_root_inode, "g", false, false, true));
    CHECK(f.rows() == 1);  // an orphan, still open
    must(f.tree.drop(ino));
    CHECK(f.rows() == 0);

    auto replaced = f.make("old", S_IFREG | 0644, {{"user.old", "1"}});
    auto kept = f.make("new", S_IFREG | 0644, {{"user.new", "1"}});
    must(f.tree.rename(k_root_inode, "new", k_root_inode, "old", 0,
                       [](InodeNumber) { return false; }));
    CHECK(f.rows() == 1);
    CHECK(must(f.tree.xattr(kept, "user.new")) == "1");
    CHECK(error_of(f.tree.xattrs(replaced)) == ENOENT);

    auto dir = f.make("dir", S_IFDIR | 0755, {{"user.d", "1"}});
    must(f.tree.remove(k_root_inode, "dir", true, false, false));
    CHECK(f.rows() == 1);
    (void)dir;
}
