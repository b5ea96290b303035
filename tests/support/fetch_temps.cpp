#include "tests/support/fetch_temps.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include "tests/support/temp_dir.h"

namespace fbfs::test {

namespace fs = std::filesystem;

namespace {

// The pid of a child that has exited and been reaped: no process has it (until reused).
pid_t gone_pid() {
    pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error("cannot fork");
    }
    if (pid == 0) {
        ::_exit(0);
    }
    ::waitpid(pid, nullptr, 0);
    return pid;
}

// True if some other open file description holds `path`'s flock.
bool locked_by_another(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);
    return held;
}

}  // namespace

PlantedFetchTemps::PlantedFetchTemps(const fs::path& tmp_dir) {
    pid_t gone = gone_pid();
    abandoned = tmp_dir / fmt::format("fetch-{}-stale0", gone);
    locked = tmp_dir / fmt::format("fetch-{}-held00", gone);
    live = tmp_dir / fmt::format("fetch-{}-alive0", ::getpid());
    fs::create_directories(tmp_dir);
    for (const auto& path : {abandoned, locked, live}) {
        write_file(path, "part of an object");
    }
    m_holder =
        ServerProcess({"flock", "--exclusive", locked.string(), "sleep", "600"}, "/dev/null");
    for (int i = 0; !locked_by_another(locked); ++i) {
        if (i == 1000) {
            throw std::runtime_error("flock did not take the lock of " + locked.string());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

}  // namespace fbfs::test
