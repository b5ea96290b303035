#include "store/meta/volume_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "store/base/unique_fd.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::VolumeLock;
using fbfs::test::TempDir;

namespace {

// A store root with its locks/ directory, as Store::open leaves it.
fs::path make_root(const TempDir& tmp) {
    fs::create_directories(tmp / "store" / "locks");
    return tmp / "store";
}

// Holds the lock on `volume` as acquire() would, but with the lock file's content chosen by the
// test: what a holder that has just taken the lock, and not yet written its pid, shows.
struct BareLock {
    fbfs::UniqueFd fd;
    BareLock(const fs::path& root, const std::string& volume, std::string_view content) {
        auto path = root / "locks" / (volume + ".lock");
        fd = fbfs::UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        REQUIRE(fd);
        REQUIRE(::pwrite(fd.get(), content.data(), content.size(), 0) ==
                static_cast<ssize_t>(content.size()));
        struct flock lock {};
        lock.l_type = F_WRLCK;
        lock.l_whence = SEEK_SET;
        REQUIRE(::fcntl(fd.get(), F_OFD_SETLK, &lock) == 0);
    }
    void write_pid(pid_t pid) const {
        auto text = std::to_string(pid);
        REQUIRE(::ftruncate(fd.get(), 0) == 0);
        REQUIRE(::pwrite(fd.get(), text.data(), text.size(), 0) ==
                static_cast<ssize_t>(text.size()));
    }
};

// A pid no process has: a child that has exited and been reaped.
pid_t gone_pid() {
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    return child;
}

}  // namespace

TEST_CASE("VolumeLock: holder() waits for a new holder's pid and never names pid 0 or a dead one",
          "[store][volume_lock]") {
    TempDir tmp;
    auto root = make_root(tmp);
    SECTION("a lock file still empty, then written") {
        BareLock lock(root, "default", "");
        std::thread writer([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            lock.write_pid(::getpid());
        });
        auto holder = VolumeLock::holder(root, "default");
        writer.join();
        CHECK(holder == ::getpid());
    }
    SECTION("a lock file holding the last holder's pid, then written") {
        BareLock lock(root, "default", std::to_string(gone_pid()));
        std::thread writer([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            lock.write_pid(::getpid());
        });
        auto holder = VolumeLock::holder(root, "default");
        writer.join();
        CHECK(holder == ::getpid());
    }
    SECTION("a pid that never comes: no pid at all, and acquire says unknown") {
        BareLock lock(root, "default", "0");
        auto holder = VolumeLock::holder(root, "default");
        CHECK_FALSE(holder.has_value());
        auto refused = VolumeLock::acquire(root, "default");
        REQUIRE_FALSE(refused);
        CHECK(refused.error().code == EBUSY);
        CHECK_THAT(refused.error().message, Catch::Contains("pid unknown"));
        CHECK_THAT(refused.error().message, !Catch::Contains("pid 0"));
    }
}

TEST_CASE("VolumeLock: a second acquire of a held volume fails with EBUSY naming the holder",
          "[store][volume_lock]") {
    TempDir tmp;
    auto root = make_root(tmp);
    auto first = VolumeLock::acquire(root, "default");
    INFO((first ? std::string() : first.error().message));
    REQUIRE(first);

    auto second = VolumeLock::acquire(root, "default");
    REQUIRE_FALSE(second);
    CHECK(second.error().code == EBUSY);
    CHECK_THAT(second.error().message, Catch::Contains("pid " + std::to_string(::getpid())));
    CHECK_THAT(second.error().message, Catch::Contains("'default'"));
    CHECK_THAT(second.error().message, Catch::Contains(root.string()));
}

TEST_CASE("VolumeLock: holder() is this pid while held and nobody after release",
          "[store][volume_lock]") {
    TempDir tmp;
    auto root = make_root(tmp);
    CHECK_FALSE(VolumeLock::holder(root, "default").has_value());
    {
        auto lock = VolumeLock::acquire(root, "default");
        REQUIRE(lock);
        CHECK(VolumeLock::holder(root, "default") == ::getpid());
        // Asking must not disturb the holder.
        CHECK(VolumeLock::holder(root, "default") == ::getpid());
        CHECK_FALSE(VolumeLock::acquire(root, "default"));
    }
    CHECK_FALSE(VolumeLock::holder(root, "default").has_value());
    auto again = VolumeLock::acquire(root, "default");
    CHECK(again);
}

TEST_CASE("VolumeLock: a moved lock is still held", "[store][volume_lock]") {
    TempDir tmp;
    auto root = make_root(tmp);
    auto lock = VolumeLock::acquire(root, "default");
    REQUIRE(lock);
    std::optional<VolumeLock> moved(std::move(*lock));
    CHECK(VolumeLock::holder(root, "default") == ::getpid());
    CHECK_FALSE(VolumeLock::acquire(root, "default"));
    moved.reset();
    CHECK(VolumeLock::acquire(root, "default"));
}

TEST_CASE("VolumeLock: different volumes lock independently", "[store][volume_lock]") {
    TempDir tmp;
    auto root = make_root(tmp);
    auto a = VolumeLock::acquire(root, "a");
    REQUIRE(a);
    auto b = VolumeLock::acquire(root, "b");
    INFO((b ? std::string() : b.error().message));
    REQUIRE(b);
    CHECK(VolumeLock::holder(root, "a") == ::getpid());
    CHECK(VolumeLock::holder(root, "b") == ::getpid());
    CHECK_FALSE(VolumeLock::holder(root, "c").has_value());
    CHECK_FALSE(VolumeLock::acquire(root, "a"));
    CHECK_FALSE(VolumeLock::acquire(root, "b"));
}

TEST_CASE("VolumeLock: a lock held by a killed process is free afterwards",
          "[store][volume_lock]") {
    TempDir tmp;
    auto root = make_root(tmp);
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(ready[0]);
        auto lock = VolumeLock::acquire(root, "default");
        char status = lock ? 'y' : 'n';
        [[maybe_unused]] auto n = ::write(ready[1], &status, 1);
        ::alarm(60);  // never outlive a parent that failed before killing us
        ::pause();    // held until killed
        ::_exit(0);
    }
    ::close(ready[1]);
    char status = 0;
    REQUIRE(::read(ready[0], &status, 1) == 1);
    ::close(ready[0]);
    CHECK(status == 'y');

    CHECK(VolumeLock::holder(root, "default") == child);
    auto while_held = VolumeLock::acquire(root, "default");
    CHECK_FALSE(while_held);
    if (!while_held) {
        CHECK_THAT(while_held.error().message, Catch::Contains("pid " + std::to_string(child)));
    }

    REQUIRE(::kill(child, SIGKILL) == 0);
    int wstatus = 0;
    REQUIRE(::waitpid(child, &wstatus, 0) == child);
    CHECK(WIFSIGNALED(wstatus));

    CHECK_FALSE(VolumeLock::holder(root, "default").has_value());
    auto after = VolumeLock::acquire(root, "default");
    INFO((after ? std::string() : after.error().message));
    REQUIRE(after);
    CHECK(VolumeLock::holder(root, "default") == ::getpid());
}

TEST_CASE("VolumeLock: acquire without a locks directory fails naming the lock file",
          "[store][volume_lock]") {
    TempDir tmp;
    auto lock = VolumeLock::acquire(tmp.path(), "default");
    REQUIRE_FALSE(lock);
    CHECK(lock.error().code == ENOENT);
    CHECK_THAT(lock.error().message, Catch::Contains((tmp / "locks" / "default.lock").string()));
}

TEST_CASE("VolumeLock: asking who holds a free volume never makes an acquire fail",
          "[store][volume_lock]") {
    // `fbfs stat` may ask while `fbfs mount` takes the lock: the question must not be a lock.
    TempDir tmp;
    auto root = make_root(tmp);
    { REQUIRE(VolumeLock::acquire(root, "default")); }  // creates the lock file
    std::atomic<bool> done{false};
    std::thread asker([&] {
        while (!done) {
            VolumeLock::holder(root, "default");
        }
    });
    int failures = 0;
    std::string last_error;
    for (int i = 0; i < 2000; ++i) {
        auto lock = VolumeLock::acquire(root, "default");
        if (!lock) {
            ++failures;
            last_error = lock.error().message;
        }
    }
    done = true;
    asker.join();
    INFO(last_error);
    CHECK(failures == 0);
}

TEST_CASE("VolumeLock: a volume name that is not a plain file name is refused",
          "[store][volume_lock]") {
    TempDir tmp;
    auto root = make_root(tmp);
    for (const char* name : {"../escape", "", "a/b", ".."}) {
        INFO("'" << name << "'");
        auto lock = VolumeLock::acquire(root, name);
        REQUIRE_FALSE(lock);
        CHECK(lock.error().code == EINVAL);
        CHECK_FALSE(VolumeLock::holder(root, name).has_value());
    }
    CHECK_FALSE(fs::exists(root / "escape.lock"));
    CHECK(fs::is_empty(root / "locks"));
}
