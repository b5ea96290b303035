// fs/mount's unmount_volume against a daemon whose last thread outlives its mount: a real
// daemon (mount_volume in the foreground, as `fbfs mount --foreground` serves) in a child of the
// test, that takes its volume's lock again once the mount is gone and keeps it for a while, as
// a daemon holds it until its last thread has exited.
#include "fs/mount.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <optional>
#include <string>

#include "store/base/unique_fd.h"
#include "store/meta/volume_lock.h"
#include "tests/support/mount.h"
#include "tests/support/posix.h"
#include "tests/support/temp_dir.h"
#include "tests/support/threaded_child.h"

namespace fs = std::filesystem;
using fbfs::UniqueFd;
using fbfs::VolumeLock;
using fbfs::test::force_unmount;
using fbfs::test::mounts_at;
using fbfs::test::sys_error;
using fbfs::test::TempDir;
using fbfs::test::ThreadedChild;
using fbfs::test::within;
using namespace std::chrono_literals;

namespace {

// The daemon described above, serving the volume "default" of tmp/store at tmp/mnt. It keeps the
// lock for `hold` after its mount is gone, or (without) until release().
class LingeringDaemon {
public:
    LingeringDaemon(const TempDir& tmp, ThreadedChild::Leader leader,
                    std::optional<std::chrono::milliseconds> hold)
        : m_mountpoint(tmp / "mnt") {
        fs::create_directories(m_mountpoint);
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            throw sys_error("pipe2");
        }
        UniqueFd release_read(fds[0]);
        m_release.reset(fds[1]);
        int wait_fd = release_read.get();
        int release_fd = m_release.get();
        int wait_ms = hold ? static_cast<int>(hold->count()) : -1;
        fbfs::MountRequest request;
        request.store = tmp / "store";
        request.mountpoint = m_mountpoint;
        request.foreground = true;
        m_child.emplace(
            [=] {
                ::close(release_fd);  // the test's end: its close is the release
                spdlog::set_level(spdlog::level::warn);
                auto served = fbfs::mount_volume(request);
                auto lock = VolumeLock::acquire(request.store, request.volume);
                pollfd released{wait_fd, POLLIN, 0};
                ::poll(&released, 1, wait_ms);
                ::_exit(served && lock ? 0 : 1);
            },
            leader);
    }
    ~LingeringDaemon() {
        release();
        if (!mounts_at(m_mountpoint).empty()) {
            force_unmount(m_mountpoint);
        }
        m_child.reset();
    }
    LingeringDaemon(const LingeringDaemon&) = delete;
    LingeringDaemon& operator=(const LingeringDaemon&) = delete;

    pid_t pid() const { return m_child->pid(); }
    // True once this daemon serves the mount, polled for at most 30 s.
    bool serving() const {
        auto source = "fbfs:default:" + std::to_string(pid());
        return within(30s, [&] {
            auto found = mounts_at(m_mountpoint);
            return !found.empty() && found.back().source == source;
        });
    }
    bool leader_gone() const { return m_child->leader_gone(30s); }
    void release() { m_release.reset(); }

private:
    fs::path m_mountpoint;
    UniqueFd m_release;
    std::optional<ThreadedChild> m_child;
};

}  // namespace

TEST_CASE(
    "unmount_volume waits for a daemon's last thread even after its leader exited, so the "
    "volume mounts again at once",
    "[fuse]") {
    TempDir tmp;
    LingeringDaemon daemon(tmp, ThreadedChild::Leader::exits, 500ms);
    REQUIRE(daemon.serving());
    REQUIRE(daemon.leader_gone());

    auto unmounted = fbfs::unmount_volume(tmp / "mnt");
    INFO((unmounted ? "" : unmounted.error().message));
    REQUIRE(unmounted);
    CHECK(mounts_at(tmp / "mnt").empty());
    // What `fbfs mount` checks before it mounts the volume again.
    auto holder = VolumeLock::holder(tmp / "store", "default");
    INFO("the volume is held by pid " << holder.value_or(-1) << "; the daemon was "
                                      << daemon.pid());
    CHECK_FALSE(holder);
}

TEST_CASE("unmount_volume gives up on a daemon that outlives its mount and names its pid",
          "[fuse]") {
    TempDir tmp;
    LingeringDaemon daemon(tmp, ThreadedChild::Leader::waits, std::nullopt);
    REQUIRE(daemon.serving());

    auto unmounting =
        std::async(std::launch::async, [&] { return fbfs::unmount_volume(tmp / "mnt", 1000ms); });
    // Without a limit it would wait for as long as the daemon lives: this bound only keeps such
    // a failure from hanging the run.
    bool returned = unmounting.wait_for(60s) == std::future_status::ready;
    daemon.release();
    auto unmounted = unmounting.get();
    CHECK(returned);
    REQUIRE_FALSE(unmounted);
    auto pid = std::to_string(daemon.pid());
    CHECK(unmounted.error().code == ETIMEDOUT);
    CHECK_THAT(unmounted.error().message, Catch::Contains("fbfs daemon (pid " + pid + ")") &&
                                              Catch::Contains("kill " + pid) &&
                                              Catch::Contains((tmp / "mnt").string()));
    CHECK(mounts_at(tmp / "mnt").empty());
}
