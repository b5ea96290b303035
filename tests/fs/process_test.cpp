// fs/process: waiting for a process to be gone with all its threads (what `fbfs umount` waits
// for), on real processes.
#include "fs/process.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "store/base/unique_fd.h"
#include "tests/support/posix.h"
#include "tests/support/threaded_child.h"

using fbfs::UniqueFd;
using fbfs::wait_until_exited;
using fbfs::test::sys_error;
using fbfs::test::ThreadedChild;
using namespace std::chrono_literals;

namespace {

// A pipe whose write end, once closed, lets a child's work end.
struct Release {
    Release() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            throw sys_error("pipe2");
        }
        read_end.reset(fds[0]);
        write_end.reset(fds[1]);
    }
    // Blocks until the write end is closed in every process that has it (a child closes its own).
    void wait() const {
        pollfd ready{read_end.get(), POLLIN, 0};
        while (::poll(&ready, 1, -1) < 0 && errno == EINTR) {
        }
    }
    UniqueFd read_end;
    UniqueFd write_end;
};

}  // namespace

TEST_CASE("wait_until_exited: a process whose leader exited is there until its last thread is",
          "[fuse]") {
    Release release;
    ThreadedChild child(
        [&] {
            release.write_end.reset();
            release.wait();
        },
        ThreadedChild::Leader::exits);
    release.read_end.reset();
    REQUIRE(child.leader_gone(30s));

    CHECK_FALSE(wait_until_exited(child.pid(), 200ms));
    release.write_end.reset();
    CHECK(wait_until_exited(child.pid(), 30s));
    CHECK(child.reap(30s));
}

TEST_CASE("wait_until_exited: a live process is waited for until the limit, then reported there",
          "[fuse]") {
    Release release;
    ThreadedChild child(
        [&] {
            release.write_end.reset();
            release.wait();
        },
        ThreadedChild::Leader::waits);
    release.read_end.reset();

    auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(wait_until_exited(child.pid(), 300ms));
    CHECK(std::chrono::steady_clock::now() - start >= 300ms);
    release.write_end.reset();
    CHECK(wait_until_exited(child.pid(), 30s));
}

TEST_CASE("wait_until_exited: a pid with no process is gone at once", "[fuse]") {
    pid_t pid = 0;
    {
        ThreadedChild child([] {}, ThreadedChild::Leader::waits);
        pid = child.pid();
        REQUIRE(child.reap(30s));
    }
    CHECK(wait_until_exited(pid, 0ms));
}
