#include "fs/inode_table.h"

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <memory>

#include "tests/fs/unit/volume_fixture.h"

using fbfs::InodeNumber;
using fbfs::InodeRecord;
using fbfs::InodeTable;
using fbfs::OpenInode;
using fbfs::test::VolumeFixture;

namespace {

constexpr InodeNumber k_ino = 42;

// Runs `body` in a child process and returns how it ended (waitpid's status).
template <class Body>
int in_child(Body body) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::signal(SIGABRT, SIG_DFL);  // not Catch's handler, which would report in the child
        body();
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return status;
}

}  // namespace

TEST_CASE("InodeTable: the kernel holds an inode until it forgot every lookup") {
    InodeTable table;
    CHECK(table.unused(k_ino));
    table.remember(k_ino);
    table.remember(k_ino);
    CHECK(table.lookups(k_ino) == 2);
    CHECK_FALSE(table.unused(k_ino));
    CHECK_FALSE(table.forget(k_ino, 1));
    CHECK(table.lookups(k_ino) == 1);
    CHECK(table.forget(k_ino, 1));
    CHECK(table.lookups(k_ino) == 0);
    CHECK(table.unused(k_ino));
}

TEST_CASE("InodeTable: a forget of more lookups than the kernel holds aborts the daemon") {
    // A count that goes below zero is a bug that would drop an inode still in use: stop at once.
    SECTION("an inode never looked up") {
        int status = in_child([] { InodeTable().forget(k_ino, 1); });
        CHECK(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == SIGABRT);
    }
    SECTION("one forgotten more often than found") {
        int status = in_child([] {
            InodeTable table;
            table.remember(k_ino);
            table.forget(k_ino, 2);
        });
        CHECK(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == SIGABRT);
    }
}

TEST_CASE("InodeTable: open handles share one OpenInode and keep the inode in use") {
    VolumeFixture f;
    InodeTable table;
    int made = 0;
    auto make = [&] {
        ++made;
        return std::make_shared<OpenInode>(k_ino, f.tree.id(), f.store->pool(), InodeRecord{});
    };
    auto first = table.open(k_ino, make);
    auto second = table.open(k_ino, make);
    REQUIRE(first);
    CHECK(first == second);
    CHECK(made == 1);
    CHECK(table.find_open(k_ino) == first);
    CHECK_FALSE(table.unused(k_ino));  // no lookups, but handles
    CHECK_FALSE(table.release(k_ino));
    CHECK(table.release(k_ino));
    CHECK(table.find_open(k_ino) == nullptr);
    CHECK(table.unused(k_ino));
}

TEST_CASE("InodeTable: a handle that could not be made registers nothing") {
    InodeTable table;
    CHECK(table.open(k_ino, [] { return std::shared_ptr<OpenInode>(); }) == nullptr);
    CHECK(table.unused(k_ino));
    CHECK(table.find_open(k_ino) == nullptr);
}

TEST_CASE("InodeTable: releasing a handle that was never opened aborts the daemon") {
    int status = in_child([] { InodeTable().release(k_ino); });
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGABRT);
}

TEST_CASE("InodeTable: an inode keeps the path it was first found at, until hidden") {
    InodeTable table;
    table.remember(k_ino, "src/a.c");
    table.remember(k_ino, "src/b.c");  // a hard link found later
    CHECK(table.path_of(k_ino) == "src/a.c");
    table.set_path(k_ino, "lib/a.c");  // renamed
    CHECK(table.path_of(k_ino) == "lib/a.c");
    CHECK(table.known_paths() ==
          std::vector<std::pair<InodeNumber, std::string>>{{k_ino, "lib/a.c"}});

    table.clear_path(k_ino);  // a whiteout hides it
    CHECK_FALSE(table.path_of(k_ino));
    CHECK(table.known_paths().empty());
    table.remember(k_ino, "src/a.c");  // found again
    CHECK(table.path_of(k_ino) == "src/a.c");
    CHECK(table.lookups(k_ino) == 3);
}

TEST_CASE("InodeTable: an inode the kernel forgot has no path any more") {
    InodeTable table;
    table.remember(k_ino, "a");
    CHECK(table.forget(k_ino, 1));
    CHECK_FALSE(table.path_of(k_ino));
    table.set_path(k_ino, "b");  // a rename of something the kernel no longer holds
    CHECK_FALSE(table.path_of(k_ino));
}
