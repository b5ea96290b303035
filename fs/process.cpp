#include "fs/process.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "store/base/unique_fd.h"

namespace fbfs {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void exec_child(const std::vector<char*>& args, const fs::path& cwd, int stderr_fd) {
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    if (stderr_fd >= 0) {
        ::dup2(stderr_fd, STDERR_FILENO);
    }
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
        std::fprintf(stderr, "fbfs: cannot enter %s: %s\n", cwd.c_str(), std::strerror(errno));
        ::_exit(126);
    }
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "fbfs: cannot run %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
}

void read_all(int fd, std::string& out) {
    char buf[512];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
}

// True once `pid` is gone with all its threads, read from /proc (for kernels, or seccomp
// filters, without pidfd_open): no such process, or a zombie with no other thread left.
bool thread_group_gone(pid_t pid) {
    auto proc = fs::path("/proc") / std::to_string(pid);
    std::ifstream stat(proc / "stat");
    std::string line;
    if (!std::getline(stat, line)) {
        return true;
    }
    auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z') {
        return false;
    }
    std::error_code ec;
    fs::directory_iterator threads(proc / "task", ec);
    return ec || std::distance(threads, fs::directory_iterator()) <= 1;
}

}  // namespace

Result<int> run_program(const std::vector<std::string>& argv, const fs::path& cwd,
                        std::string* errors) {
    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    UniqueFd err_read;
    UniqueFd err_write;
    if (errors != nullptr) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            return errno_error(fmt::format("cannot start {}: pipe", argv.at(0)));
        }
        err_read.reset(fds[0]);
        err_write.reset(fds[1]);
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        return std::unexpected(fork_error(argv.at(0)));
    }
    if (pid == 0) {
        exec_child(args, cwd, err_write.get());
    }
    if (errors != nullptr) {
        err_write.reset();
        read_all(err_read.get(), *errors);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return errno_error(fmt::format("cannot wait for {} (pid {})", argv.at(0), pid));
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Error fork_error(std::string_view what) {
    int code = errno;
    return Error{code, fmt::format("cannot start {}: fork: {}{}", what, std::strerror(code),
                                   code == EAGAIN ? " (the limit on processes is reached: end "
                                                    "some, or raise ulimit -u)"
                                                  : "")};
}

bool wait_until_exited(pid_t pid, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    // A pidfd polls readable once the whole thread group has exited (it is race-free too).
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd && errno == ESRCH) {
        return true;
    }
    for (;;) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now());
        if (pidfd) {
            pollfd ready{pidfd.get(), POLLIN, 0};
            int n = ::poll(&ready, 1, static_cast<int>(std::max<long>(left.count(), 0)));
            if (n > 0) {
                return true;
            }
            if (n < 0 && errno != EINTR) {
                pidfd.reset();  // /proc below, then
            }
        } else {
            if (thread_group_gone(pid)) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        if (left.count() <= 0) {
            return pidfd ? false : thread_group_gone(pid);
        }
    }
}

}  // namespace fbfs
