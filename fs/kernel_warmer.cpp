#include "fs/kernel_warmer.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "store/base/thread_safety.h"
#include "store/base/unique_fd.h"

namespace fbfs {

namespace {

std::atomic<bool> g_unmount_requested{false};
constexpr int k_foreground_threads = 4;
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

// Lists one directory of the mount with getdents64 (each call a READDIRPLUS request the daemon
// answers with entries and attributes), queueing its subdirectories. Returns its entry count.
std::uint64_t list_directory(const std::filesystem::path& mountpoint, const std::string& dir,
                             std::vector<std::string>& subdirs,
                             const std::function<void(ino_t)>* on_file) {
    auto path = dir.empty() ? mountpoint : mountpoint / dir;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        return 0;  // gone, or not ours to read
    }
    alignas(8) char buf[32 * 1024];
    std::uint64_t entries = 0;
    for (;;) {
        long n = ::syscall(SYS_getdents64, fd.get(), buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        for (long at = 0; at < n;) {
            auto* entry = reinterpret_cast<const dirent64*>(buf + at);
            at += entry->d_reclen;
            std::string_view name = entry->d_name;
            if (name == "." || name == "..") {
                continue;
            }
            ++entries;
            if (entry->d_type == DT_DIR && name != ".git") {
                subdirs.push_back(dir.empty() ? std::string(name) : dir + "/" + std::string(name));
            } else if (entry->d_type == DT_REG && on_file != nullptr) {
                (*on_file)(entry->d_ino);
            }
        }
    }
    // Listing invalidated the directory's atime: fetch its attributes now, not at the build's
    // first stat.
    struct stat st {};
    ::fstat(fd.get(), &st);
    return entries;
}

void lower_own_priority() {
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
    constexpr int k_ioprio_class_idle = 3;
    ::syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, ::gettid(), k_ioprio_class_idle << 13);
}

// The directories still to list, shared by the walking threads.
class WarmQueue {
public:
    WarmQueue() { m_dirs.emplace_back(); }

    // Takes the next directory, waiting while others may still add some. False when the walk
    // is over, or `keep_going` says to stop.
    bool take(std::string& dir, const std::function<bool()>& keep_going) EXCLUDES(m_mutex) {
        LockGuard lock(m_mutex);
        for (;;) {
            if (!keep_going()) {
                return false;
            }
            if (!m_dirs.empty()) {
                dir = std::move(m_dirs.front());
                m_dirs.pop_front();
                ++m_busy;
                return true;
            }
            if (m_busy == 0) {
                return false;
            }
            m_changed.wait_for(m_mutex, std::chrono::milliseconds(20));
        }
    }
    void done(std::vector<std::string>& subdirs, std::uint64_t entries) {
        {
            LockGuard lock(m_mutex);
            for (auto& d : subdirs) {
                m_dirs.push_back(std::move(d));
            }
            --m_busy;
            ++m_result.directories;
            m_result.entries += entries;
        }
        m_changed.notify_all();
    }
    WarmResult result() {
        LockGuard lock(m_mutex);
        WarmResult r = m_result;
        r.complete = m_dirs.empty() && m_busy == 0;
        return r;
    }

private:
    Mutex m_mutex;
    std::condition_variable_any m_changed;
    std::deque<std::string> m_dirs GUARDED_BY(m_mutex);
    int m_busy GUARDED_BY(m_mutex) = 0;
    WarmResult m_result GUARDED_BY(m_mutex);
};

void walk(const std::filesystem::path& mountpoint, WarmQueue& queue,
          const std::function<bool()>& keep_going, const std::function<void(ino_t)>* on_file) {
    std::string dir;
    std::vector<std::string> subdirs;
    while (queue.take(dir, keep_going)) {
        subdirs.clear();
        auto entries = list_directory(mountpoint, dir, subdirs, on_file);
        queue.done(subdirs, entries);
    }
}

}  // namespace

void request_unmount_from_signal() {
    g_unmount_requested.store(true, std::memory_order_relaxed);
}

bool unmount_requested() {
    return g_unmount_requested.load(std::memory_order_relaxed);
}

WarmResult warm_kernel_caches(const std::filesystem::path& mountpoint, std::stop_token stop,
                              std::chrono::milliseconds foreground,
                              const std::function<void()>& foreground_done,
                              const std::function<void(ino_t)>& on_file,
                              std::atomic<pid_t>& background_tid) {
    using Clock = std::chrono::steady_clock;
    auto deadline = Clock::now() + foreground;
    auto running = [&] { return !stop.stop_requested() && !unmount_requested(); };
    WarmQueue queue;
    {
        // In the foreground several threads list at once: a cold checkout's metadata comes from
        // the disk, and requests in flight together wait for it together.
        auto in_foreground = [&] { return running() && Clock::now() < deadline; };
        std::vector<std::jthread> threads;
        for (int i = 0; i < k_foreground_threads; ++i) {
            threads.emplace_back([&] { walk(mountpoint, queue, in_foreground, &on_file); });
        }
    }
    foreground_done();
    lower_own_priority();
    background_tid.store(::gettid(), std::memory_order_release);
    walk(mountpoint, queue, running, nullptr);
    background_tid.store(0, std::memory_order_release);
    return queue.result();
}

}  // namespace fbfs
