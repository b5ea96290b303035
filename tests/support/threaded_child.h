// ThreadedChild: a child process of the test whose work runs on a second thread, for tests of
// what waits for a process to be gone (`fbfs umount` waiting for a daemon). Its leader (main)
// thread either waits, or exits at once on its own (SYS_exit: that thread only, without
// unwinding the test's stack), which leaves a zombie leader while the work goes on: what a
// process looks like while its other threads are still exiting. The child ends, status 0, when
// `work` returns.
//
// The destructor kills the child by its pid (SIGKILL) if it has not ended within 10 s, and reaps
// it. Fork it from a single-threaded test. Not thread-safe; one test thread owns each.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>

namespace fbfs::test {

class ThreadedChild {
public:
    enum class Leader { waits, exits };

    // Forks; throws std::system_error if that fails.
    ThreadedChild(std::function<void()> work, Leader leader);
    ~ThreadedChild();
    ThreadedChild(const ThreadedChild&) = delete;
    ThreadedChild& operator=(const ThreadedChild&) = delete;

    pid_t pid() const { return m_pid; }
    // True once the leader is a zombie, polled for at most `limit`.
    bool leader_gone(std::chrono::milliseconds limit) const;
    // Waits up to `limit` for the child to end and reaps it; true if it did.
    bool reap(std::chrono::milliseconds limit);

private:
    pid_t m_pid = -1;
    bool m_reaped = false;
};

}  // namespace fbfs::test
