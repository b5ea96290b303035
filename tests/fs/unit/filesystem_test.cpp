// Filesystem without a kernel: the operations a mount serves, called as fuse_server.cpp calls
// them, over a real store. Asserts the kernel's lookup counts, which decide when an unlinked
// file's inode and content are freed.
#include "fs/filesystem.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fs/lower_layer.h"
#include "store/meta/lmdb.h"
#include "store/meta/schema.h"
#include "tests/fs/unit/volume_fixture.h"

using fbfs::Caller;
using fbfs::Filesystem;
using fbfs::InodeNumber;
using fbfs::k_root_inode;
using fbfs::LmdbTxn;
using fbfs::VolumeTree;
using fbfs::test::must;
using fbfs::test::VolumeFixture;

namespace {

struct Fixture : VolumeFixture {
    Filesystem fs{must(VolumeTree::open(*store, "mounted", ::getuid(), ::getgid()))};
    Caller caller{::getuid(), ::getgid()};

    InodeNumber make_file(std::string_view name) {
        return must(fs.mknod(k_root_inode, name, S_IFREG | 0644, 0, caller)).st_ino;
    }
};

// What thread `tid` of this process sleeps in, as /proc says ("futex_wait_queue", ...).
std::string wchan(pid_t tid) {
    std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/wchan");
    std::string text;
    std::getline(in, text);
    return text;
}

}  // namespace

TEST_CASE("Filesystem: every entry it returns counts one kernel lookup, and forget drops it") {
    Fixture f;
    InodeNumber ino = f.make_file("a");
    CHECK(f.fs.inodes().lookups(ino) == 1);
    CHECK(must(f.fs.lookup(k_root_inode, "a")).st_ino == ino);
    CHECK(f.fs.inodes().lookups(ino) == 2);
    CHECK(must(f.fs.link(ino, k_root_inode, "b")).st_nlink == 2);
    CHECK(f.fs.inodes().lookups(ino) == 3);

    SECTION("a failed lookup or link counts nothing") {
        CHECK_FALSE(f.fs.lookup(k_root_inode, "none"));
        CHECK_FALSE(f.fs.link(ino, k_root_inode, "b"));  // EEXIST
        CHECK(f.fs.inodes().lookups(ino) == 3);
    }
    SECTION("an unlinked file goes with the kernel's last forget") {
        must(f.fs.unlink(k_root_inode, "a"));
        must(f.fs.unlink(k_root_inode, "b"));
        REQUIRE(must(f.fs.tree().get(ino)));  // an orphan while the kernel holds it
        f.fs.forget(ino, 2);
        REQUIRE(must(f.fs.tree().get(ino)));
        f.fs.forget(ino, 1);
        CHECK_FALSE(must(f.fs.tree().get(ino)));
    }
}

TEST_CASE("Filesystem: a link that fails after the volume linked counts no lookup") {
    // The link's entry reply carries the inode only if link() succeeds: a lookup counted for a
    // failed link is never forgotten by the kernel, and the inode outlives its last name. Make
    // the link's read-back fail: every LMDB reader slot is taken while the link waits for the
    // write lock, after its own reads.
    Fixture f;
    InodeNumber ino = f.make_file("a");
    MDB_env* env = f.store->env().handle();
    auto writer = must(LmdbTxn::begin(env, false));  // holds LMDB's write lock

    std::atomic<pid_t> tid{0};
    bool linked = false;
    std::thread linker([&] {
        tid = static_cast<pid_t>(::syscall(SYS_gettid));
        linked = f.fs.link(ino, k_root_inode, "b").has_value();
    });
    while (tid == 0 || !wchan(tid).starts_with("futex")) {
        std::this_thread::yield();  // until the link waits for the write lock
    }
    std::vector<LmdbTxn> readers;
    for (;;) {
        auto reader = LmdbTxn::begin(env, true);
        if (!reader) {
            break;
        }
        readers.push_back(std::move(*reader));
    }
    CHECK(readers.size() > 0);
    writer.abort();
    linker.join();
    readers.clear();

    CHECK(f.fs.inodes().lookups(ino) == (linked ? 2 : 1));
    // The volume has the link either way: both names reach the file.
    CHECK(must(f.fs.lookup(k_root_inode, "b")).st_ino == ino);
}

TEST_CASE("Filesystem: an overlay rename is one transaction: no moment leaves the old name bare") {
    // Renaming a source file copies it up, moves it and leaves a whiteout where it was. A crash
    // keeps whatever was committed last (commits reach the page cache at once), so every
    // committed state must be before the rename or after it: never the file at its new name with
    // nothing at the old one, which would bring the source file back there. Another thread
    // reads every committed state while the renames run.
    VolumeFixture v;
    constexpr int k_files = 500;
    for (int i = 0; i < k_files; ++i) {
        fbfs::test::write_file(v.source / ("f" + std::to_string(i)), "source");
    }
    Filesystem fs(must(VolumeTree::open(*v.store, "overlay", ::getuid(), ::getgid())),
                  must(fbfs::LowerLayer::open(v.source)));
    const fbfs::Tables& tables = v.store->tables();
    fbfs::VolumeId volume = fs.tree().id();

    std::atomic<bool> done{false};
    std::atomic<int> renaming{0};  // the file being renamed now
    std::atomic<int> bare{0};
    std::thread observer([&] {
        while (!done) {
            auto name = std::to_string(renaming.load());
            auto read = v.store->env().read([&](LmdbTxn& txn) -> fbfs::Result<void> {
                auto old_entry = txn.get(tables.dirents, fbfs::dirent_key(volume, 1, "f" + name));
                auto new_entry = txn.get(tables.dirents, fbfs::dirent_key(volume, 1, "g" + name));
                if (old_entry && new_entry && !*old_entry && *new_entry) {
                    ++bare;
                }
                return {};
            });
            (void)read;
        }
    });
    std::string failed;
    for (int i = 0; i < k_files && failed.empty(); ++i) {
        renaming = i;
        auto name = std::to_string(i);
        auto found = fs.lookup(k_root_inode, "f" + name);
        auto renamed = found ? fs.rename(k_root_inode, "f" + name, k_root_inode, "g" + name, 0)
                             : fbfs::Result<void>(std::unexpected(found.error()));
        if (!renamed) {
            failed = renamed.error().message;
        }
    }
    done = true;
    observer.join();
    CHECK(failed == "");
    CHECK(bare == 0);
    // And the end state: each file at its new name, the source's copy hidden at the old one.
    for (int i : {0, k_files - 1}) {
        auto name = std::to_string(i);
        CHECK_FALSE(fs.lookup(k_root_inode, "f" + name));
        CHECK(fs.lookup(k_root_inode, "g" + name));
    }
}

TEST_CASE("Filesystem: renaming a source file onto a hard link of itself does nothing") {
    // rename(2) of two names of one inode succeeds and changes nothing.
    VolumeFixture v;
    fbfs::test::write_file(v.source / "a", "source");
    Filesystem fs(must(VolumeTree::open(*v.store, "overlay", ::getuid(), ::getgid())),
                  must(fbfs::LowerLayer::open(v.source)));
    auto a = must(fs.lookup(k_root_inode, "a"));
    must(fs.link(a.st_ino, k_root_inode, "b"));
    must(fs.rename(k_root_inode, "a", k_root_inode, "b", 0));
    CHECK(must(fs.lookup(k_root_inode, "a")).st_ino == a.st_ino);
    CHECK(must(fs.lookup(k_root_inode, "b")).st_ino == a.st_ino);
}
