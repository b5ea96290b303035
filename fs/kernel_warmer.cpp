#include "fs/kernel_warmer.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <deque>
#include <string>
#include <string_view>

#include "store/unique_fd.h"

namespace fbfs {

namespace {

std::atomic<bool> g_unmount_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

// Lists one directory of the mount with getdents64 (each call a READDIRPLUS request the daemon
// answers with entries and attributes), queueing its subdirectories. Returns its entry count.
std::uint64_t list_directory(const std::filesystem::path& mountpoint, const std::string& dir,
                             std::deque<std::string>& queue,
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
                queue.push_back(dir.empty() ? std::string(name) : dir + "/" + std::string(name));
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
    bool in_foreground = true;
    auto leave_foreground = [&] {
        if (in_foreground) {
            in_foreground = false;
            foreground_done();
            lower_own_priority();
            background_tid.store(::gettid(), std::memory_order_release);
        }
    };
    WarmResult result;
    std::deque<std::string> queue{""};
    while (!queue.empty() && !stop.stop_requested() && !unmount_requested()) {
        if (in_foreground && Clock::now() > deadline) {
            leave_foreground();
        }
        std::string dir = std::move(queue.front());
        queue.pop_front();
        result.entries +=
            list_directory(mountpoint, dir, queue, in_foreground ? &on_file : nullptr);
        ++result.directories;
    }
    result.complete = queue.empty();
    leave_foreground();
    background_tid.store(0, std::memory_order_release);
    return result;
}

}  // namespace fbfs
