#include "fs/listing_reply.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/fs/unit/volume_fixture.h"

using fbfs::Caller;
using fbfs::DirHandle;
using fbfs::Filesystem;
using fbfs::InodeNumber;
using fbfs::k_root_inode;
using fbfs::VolumeTree;
using fbfs::test::must;
using fbfs::test::VolumeFixture;

namespace {

// A volume with files a, b and c in its root, which the kernel holds no lookups of.
struct Fixture : VolumeFixture {
    Filesystem fs{must(VolumeTree::open(*store, "listed", ::getuid(), ::getgid()))};
    std::vector<InodeNumber> files = make_files();
    std::string sent;  // what the last successful send carried

    std::vector<InodeNumber> make_files() {
        std::vector<InodeNumber> out;
        for (const char* name : {"a", "b", "c"}) {
            auto st =
                must(fs.mknod(k_root_inode, name, S_IFREG | 0644, 0, {::getuid(), ::getgid()}));
            fs.forget(st.st_ino, 1);
            out.push_back(st.st_ino);
        }
        return out;
    }

    // Replies to a READDIR(PLUS) of the root with `size` bytes; the send fails with `error`.
    int list(bool plus, std::size_t size = 4096, int error = 0) {
        auto dir = must(fs.opendir(k_root_inode));
        return fbfs::reply_listing(nullptr, fs, k_root_inode, *dir, size, 0, plus,
                                   [&](std::span<const char> bytes) {
                                       if (error == 0) {
                                           sent.assign(bytes.begin(), bytes.end());
                                       }
                                       return -error;
                                   });
    }
    std::vector<std::uint64_t> lookups() const {
        std::vector<std::uint64_t> out;
        for (InodeNumber ino : files) {
            out.push_back(fs.inodes().lookups(ino));
        }
        return out;
    }
};

using Counts = std::vector<std::uint64_t>;

}  // namespace

TEST_CASE("ListingReply: a READDIRPLUS page counts one lookup for each entry it carries") {
    Fixture f;
    CHECK(f.list(true) == 0);
    CHECK(f.lookups() == Counts{1, 1, 1});
    for (const char* name : {"a", "b", "c"}) {
        CHECK(f.sent.find(name) != std::string::npos);
    }
}

TEST_CASE("ListingReply: a plain READDIR page counts no lookups") {
    Fixture f;
    CHECK(f.list(false) == 0);
    CHECK(f.lookups() == Counts{0, 0, 0});
    CHECK(f.sent.find('b') != std::string::npos);
}

TEST_CASE("ListingReply: entries that do not fit in the page are not counted") {
    Fixture f;
    // Room for ".", ".." and one more entry: READDIRPLUS entries take 160 bytes each.
    CHECK(f.list(true, 3 * 160) == 0);
    CHECK(f.lookups() == Counts{1, 0, 0});
}

TEST_CASE("ListingReply: a page that does not reach the kernel gives its lookups back") {
    Fixture f;
    CHECK(f.list(true, 4096, ENOENT) == -ENOENT);  // the request was interrupted
    CHECK(f.lookups() == Counts{0, 0, 0});

    // So a file removed afterwards goes at once, content and all, instead of staying an
    // orphan until the next mount.
    must(f.fs.unlink(k_root_inode, "a"));
    CHECK_FALSE(must(f.fs.tree().get(f.files[0])));
}
