#include "fs/process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace fbfs {

namespace fs = std::filesystem;

bool process_gone(pid_t pid) {
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string line;
    if (!std::getline(stat, line)) {
        return true;
    }
    auto close = line.rfind(')');
    return close == std::string::npos || close + 2 >= line.size() || line[close + 2] == 'Z';
}

int run_program(const std::vector<std::string>& argv, const fs::path& cwd, std::string* errors) {
    int err_pipe[2] = {-1, -1};
    if (errors != nullptr && ::pipe2(err_pipe, O_CLOEXEC) != 0) {
        return -1;
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        std::signal(SIGINT, SIG_DFL);
        std::signal(SIGTERM, SIG_DFL);
        if (errors != nullptr) {
            ::dup2(err_pipe[1], STDERR_FILENO);
        }
        if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
            std::fprintf(stderr, "fbfs: cannot enter %s: %s\n", cwd.c_str(), std::strerror(errno));
            ::_exit(126);
        }
        std::vector<char*> args;
        for (const auto& a : argv) {
            args.push_back(const_cast<char*>(a.c_str()));
        }
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "fbfs: cannot run %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    if (errors != nullptr) {
        ::close(err_pipe[1]);
        char buf[512];
        for (ssize_t n; pid > 0 && (n = ::read(err_pipe[0], buf, sizeof buf)) != 0;) {
            if (n < 0 && errno != EINTR) {
                break;
            }
            errors->append(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
        }
        ::close(err_pipe[0]);
    }
    if (pid < 0) {
        return -1;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace fbfs
