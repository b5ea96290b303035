#include "tests/support/threaded_child.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <system_error>
#include <thread>

#include "tests/support/posix.h"

namespace fbfs::test {

ThreadedChild::ThreadedChild(std::function<void()> work, Leader leader) {
    m_pid = ::fork();
    if (m_pid < 0) {
        throw sys_error("fork");
    }
    if (m_pid != 0) {
        return;
    }
    std::thread([work = std::move(work)] {
        work();
        ::_exit(0);  // not exit(): the test's own atexit handlers and buffers are not the child's
    }).detach();
    if (leader == Leader::exits) {
        ::syscall(SYS_exit, 0);
    }
    for (;;) {
        ::pause();
    }
}

ThreadedChild::~ThreadedChild() {
    if (!reap(std::chrono::seconds(10))) {
        ::kill(m_pid, SIGKILL);
        reap(std::chrono::seconds(60));
    }
}

bool ThreadedChild::leader_gone(std::chrono::milliseconds limit) const {
    return within(limit, [&] {
        std::ifstream stat("/proc/" + std::to_string(m_pid) + "/stat");
        std::string line;
        std::getline(stat, line);
        auto close = line.rfind(')');
        return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
    });
}

bool ThreadedChild::reap(std::chrono::milliseconds limit) {
    if (!m_reaped) {
        m_reaped = within(limit, [&] {
            int status = 0;
            pid_t done = ::waitpid(m_pid, &status, WNOHANG);
            return done == m_pid || (done < 0 && errno == ECHILD);
        });
    }
    return m_reaped;
}

}  // namespace fbfs::test
