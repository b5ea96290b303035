#include "fs/open_inode.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "store/meta/lmdb.h"
#include "store/base/object_id.h"
#include "tests/fs/unit/volume_fixture.h"

namespace fs = std::filesystem;
using fbfs::InodeNumber;
using fbfs::InodeRecord;
using fbfs::LmdbTxn;
using fbfs::ObjectId;
using fbfs::OpenInode;
using fbfs::SharedFd;
using fbfs::test::must;
using fbfs::test::VolumeFixture;

namespace {

std::string read_fd(int fd) {
    std::string out;
    char buf[65536];
    for (off_t at = 0;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, at);
        REQUIRE(n >= 0);
        if (n == 0) {
            return out;
        }
        out.append(buf, static_cast<std::size_t>(n));
        at += n;
    }
}

// A volume with one regular file, "f", holding `content`, and the file opened.
struct Fixture : VolumeFixture {
    explicit Fixture(std::string_view content = "") : ino(make_file(content)) {}

    InodeNumber ino;
    std::shared_ptr<OpenInode> file = open_file();

    InodeNumber make_file(std::string_view content) {
        InodeRecord r;
        r.mode = S_IFREG | 0644;
        auto made = must(tree.create(fbfs::k_root_inode, "f", r));
        if (!content.empty()) {
            auto put = must(store->pool().put_bytes(content));
            must(tree.update(made.ino, [&](InodeRecord& record) -> fbfs::Result<void> {
                record.object = put.id;
                record.size = put.size;
                return {};
            }));
        }
        return made.ino;
    }
    std::shared_ptr<OpenInode> open_file() {
        auto r = must(tree.get(ino));
        REQUIRE(r);
        return std::make_shared<OpenInode>(ino, tree.id(), store->pool(), *r);
    }

    void write(std::string_view bytes, off_t at) {
        auto w = must(file->begin_write());
        REQUIRE(::pwrite(w.fd->get(), bytes.data(), bytes.size(), at) ==
                static_cast<ssize_t>(bytes.size()));
        file->wrote(static_cast<std::uint64_t>(at) + bytes.size());
    }
    // What a read of the open file shows.
    std::string shown() {
        auto fd = must(file->data_fd());
        return fd ? read_fd(fd->get()) : std::string();
    }
    InodeRecord record() { return *must(tree.get(ino)); }
    // What the volume holds for the file: the bytes of its object.
    std::string stored() {
        auto r = record();
        if (!r.object) {
            return "";
        }
        auto fd = must(store->pool().open_object(*r.object));
        return read_fd(fd.get());
    }
    std::size_t staging_files() const { return temp_files("staging-"); }
};

ObjectId id_of(std::string_view bytes) {
    return ObjectId::of(bytes);
}

}  // namespace

TEST_CASE("OpenInode: a clean file is read from its object and commits nothing") {
    Fixture f("hello");
    CHECK(f.shown() == "hello");
    auto before = f.record();
    must(f.file->commit(f.tree));
    CHECK(f.record().mtime == before.mtime);
    CHECK(f.staging_files() == 0);
}

TEST_CASE("OpenInode: writes go to a staging copy until commit records it as an object") {
    Fixture f("hello");
    f.write("J", 0);
    CHECK(f.shown() == "Jello");
    CHECK(f.stored() == "hello");  // the volume still has the old content
    CHECK(f.staging_files() == 1);
    InodeRecord r = f.record();
    f.file->overlay(r);
    CHECK(r.mtime > f.record().mtime);  // the unsaved change shows

    must(f.file->commit(f.tree));
    CHECK(f.stored() == "Jello");
    CHECK(f.record().object == id_of("Jello"));
    CHECK(f.record().size == 5);
    CHECK(f.staging_files() == 0);  // renamed into the pool, not copied
    CHECK(f.shown() == "Jello");
    // The old content is named by nothing now, and gone.
    CHECK_FALSE(f.store->pool().contains(id_of("hello")));
}

TEST_CASE("OpenInode: a write after a commit starts from the committed content") {
    Fixture f("hello");
    f.write("J", 0);
    must(f.file->commit(f.tree));
    f.write(" world", 5);
    CHECK(f.shown() == "Jello world");
    must(f.file->commit(f.tree));
    CHECK(f.stored() == "Jello world");
}

TEST_CASE("OpenInode: truncating to zero copies nothing and commits an empty file") {
    Fixture f("hello");
    must(f.file->truncate(0));
    CHECK(f.shown().empty());
    InodeRecord r = f.record();
    f.file->overlay(r);
    CHECK(r.size == 0);
    must(f.file->commit(f.tree));
    CHECK_FALSE(f.record().object);
    CHECK(f.record().size == 0);
    CHECK(f.staging_files() == 0);
}

TEST_CASE("OpenInode: truncating keeps the bytes below the new size") {
    Fixture f("hello");
    must(f.file->truncate(2));
    must(f.file->commit(f.tree));
    CHECK(f.stored() == "he");
    must(f.file->truncate(4));
    must(f.file->commit(f.tree));
    CHECK(f.stored() == std::string("he\0\0", 4));
}

TEST_CASE("OpenInode: discarded changes leave the stored content showing") {
    Fixture f("hello");
    f.write("J", 0);
    f.file->discard_changes();
    CHECK(f.shown() == "hello");
    CHECK(f.staging_files() == 0);
    InodeRecord r = f.record();
    f.file->overlay(r);
    CHECK(r.mtime == f.record().mtime);
}

TEST_CASE("OpenInode: times set while open are what the commit records") {
    Fixture f("hello");
    f.write("J", 0);
    f.file->set_times(1'000, 2'000, 3'000);
    must(f.file->commit(f.tree));
    CHECK(f.record().atime == 1'000);
    CHECK(f.record().mtime == 2'000);
    CHECK(f.record().ctime == 3'000);
}

TEST_CASE("OpenInode: a commit waiting for LMDB holds up no read and no write of the file") {
    // Reads (getattr, lookup, read) of a file must not wait while its commit hashes or writes
    // metadata. Hold LMDB's write lock, so the commit waits inside it, and use the file meanwhile.
    Fixture f("hello");
    f.write("J", 0);
    MDB_env* env = f.store->env().handle();
    auto writer = must(LmdbTxn::begin(env, false));
    auto committing = std::async(std::launch::async, [&] { return f.file->commit(f.tree); });
    // The commit has hashed the staging file when it is read-only (sealed); next it waits for
    // the write lock.
    auto sealed = [&] {
        for (const auto& entry : fs::directory_iterator(f.store->pool().tmp_dir())) {
            if ((entry.status().permissions() & fs::perms::owner_write) == fs::perms::none) {
                return true;
            }
        }
        return false;
    };
    while (!sealed()) {
        std::this_thread::yield();
    }
    auto meanwhile = std::async(std::launch::async, [&] {
        std::string before = f.shown();
        InodeRecord r = f.record();
        f.file->overlay(r);
        f.write("!", 5);  // a write racing the commit
        return before + "|" + std::to_string(r.size) + "|" + f.shown();
    });
    // A lock held across the commit would make this wait until the write lock goes: a hang,
    // which a generous limit turns into a failure.
    bool served = meanwhile.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
    writer.abort();
    REQUIRE(served);
    CHECK(meanwhile.get() == "Jello|5|Jello!");
    must(committing.get());
    CHECK(f.stored() == "Jello");  // what was sealed

    // The racing write was not lost: it is still a change, and the next commit records it.
    CHECK(f.shown() == "Jello!");
    must(f.file->commit(f.tree));
    CHECK(f.stored() == "Jello!");
    CHECK(f.staging_files() == 0);
}

TEST_CASE("OpenInode: writes racing commits are all kept, and every object matches its id") {
    Fixture f;
    constexpr std::size_t k_size = 4 << 20;  // hashing takes long enough for writes to race it
    std::string expected(k_size, 'a');
    f.write(expected, 0);
    std::atomic<bool> done{false};
    std::string failed;  // Catch's assertions are for the test's thread only
    std::thread committer([&] {
        while (!done && failed.empty()) {
            if (auto committed = f.file->commit(f.tree); !committed) {
                failed = committed.error().message;
            }
        }
    });
    std::mt19937 random(7);
    for (int i = 0; i < 300; ++i) {
        std::size_t at = random() % (k_size - 16);
        std::string bytes(16, static_cast<char>('b' + i % 20));
        f.write(bytes, static_cast<off_t>(at));
        expected.replace(at, bytes.size(), bytes);
    }
    done = true;
    committer.join();
    CHECK(failed == "");
    must(f.file->commit(f.tree));
    CHECK(f.stored() == expected);
    CHECK(f.record().object == id_of(expected));
    CHECK(must(f.store->pool().verify(*f.record().object)));
    CHECK(f.staging_files() == 0);
}
