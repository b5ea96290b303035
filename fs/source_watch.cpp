#include "fs/source_watch.h"

#include <dirent.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

namespace fbfs {

namespace {

constexpr std::uint32_t k_dir_events = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                       IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF |
                                       IN_MOVE_SELF;
constexpr std::uint32_t k_watch_flags = k_dir_events | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK;
constexpr std::uint32_t k_entry_events = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;
constexpr std::uint32_t k_content_events = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE;

std::string read_limit(const char* file) {
    std::ifstream in(file);
    std::string value;
    in >> value;
    return value.empty() ? "?" : value;
}

}  // namespace

Result<std::unique_ptr<SourceWatch>> SourceWatch::start(const LowerLayer& lower,
                                                        SourceListener& listener) {
    UniqueFd inotify(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!inotify) {
        return errno_error(fmt::format("inotify (fs.inotify.max_user_instances is {})",
                                       read_limit("/proc/sys/fs/inotify/max_user_instances")));
    }
    UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop) {
        return errno_error("eventfd");
    }
    return std::unique_ptr<SourceWatch>(
        new SourceWatch(lower, listener, std::move(inotify), std::move(stop)));
}

SourceWatch::SourceWatch(const LowerLayer& lower, SourceListener& listener, UniqueFd inotify,
                         UniqueFd stop)
    : m_lower(lower),
      m_listener(listener),
      m_inotify(std::move(inotify)),
      m_stop(std::move(stop)),
      m_thread([this] { run(); }) {}

SourceWatch::~SourceWatch() {
    m_stopping = true;
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(m_stop.get(), &one, sizeof one);
    m_thread.join();
}

bool SourceWatch::wait_first_walk(std::chrono::milliseconds limit) const {
    LockGuard lock(m_mutex);
    return m_first_walk.wait_for(m_mutex, limit,
                                 [this]() REQUIRES(m_mutex) { return m_first_walk_done; });
}

std::string SourceWatch::status() const {
    LockGuard lock(m_mutex);
    return m_status;
}

std::size_t SourceWatch::directories() const {
    LockGuard lock(m_mutex);
    return m_dirs.size();
}

void SourceWatch::give_up(const std::string& why) {
    if (m_failed.exchange(true)) {
        return;
    }
    m_active.store(false, std::memory_order_release);
    {
        LockGuard lock(m_mutex);
        m_status = why;
    }
    spdlog::warn("the source is not watched: {}; lower entries are cached for 1 s", why);
    m_listener.watching(false, why);
    // Entries the kernel took while this watch looked complete may now miss a change.
    m_listener.everything_changed();
}

bool SourceWatch::add_watch(const std::string& dir) {
    int wd = ::inotify_add_watch(m_inotify.get(), m_lower.proc_path(dir).c_str(), k_watch_flags);
    if (wd < 0) {
        int error = errno;
        if (error == ENOENT || error == ENOTDIR) {
            return true;  // gone again, or replaced by a file: its parent's events say so
        }
        if (error == ENOSPC) {
            // This user namespace's limit, which is fs.inotify.max_user_watches outside any.
            give_up(
                fmt::format("the inotify watch limit ({}, fs.inotify.max_user_watches) is too "
                            "small for the source tree's directories (raise it: sysctl "
                            "fs.inotify.max_user_watches=524288)",
                            read_limit("/proc/sys/user/max_inotify_watches")));
        } else {
            give_up(fmt::format("cannot watch source directory {}: {}", dir.empty() ? "." : dir,
                                std::strerror(error)));
        }
        return false;
    }
    LockGuard lock(m_mutex);
    m_dirs[wd] = dir;
    return true;
}

bool SourceWatch::watch_tree(const std::string& top) {
    std::vector<std::string> dirs{top};
    while (!dirs.empty() && !m_stopping) {
        std::string dir = std::move(dirs.back());
        dirs.pop_back();
        // Watch first, then list: a directory made in between shows in one or the other.
        if (!add_watch(dir)) {
            return false;
        }
        auto entries = m_lower.list(dir);
        if (!entries) {
            continue;  // gone: its parent's events tell
        }
        for (const auto& entry : *entries) {
            std::string path = join_path(dir, entry.name);
            bool is_dir = entry.type == DT_DIR;
            if (entry.type == DT_UNKNOWN) {
                auto st = m_lower.stat(path);
                is_dir = st && S_ISDIR(st->st_mode);
            }
            if (is_dir) {
                dirs.push_back(std::move(path));
            }
        }
    }
    return true;
}

void SourceWatch::forget_tree(const std::string& top) {
    LockGuard lock(m_mutex);
    for (auto it = m_dirs.begin(); it != m_dirs.end();) {
        const std::string& dir = it->second;
        bool below = dir == top ||
                     (dir.size() > top.size() && dir.starts_with(top) && dir[top.size()] == '/');
        if (below) {
            ::inotify_rm_watch(m_inotify.get(), it->first);
            it = m_dirs.erase(it);
        } else {
            ++it;
        }
    }
}

void SourceWatch::handle(int wd, std::uint32_t mask, std::string_view name) {
    if (mask & IN_Q_OVERFLOW) {
        spdlog::warn(
            "the source's event queue overflowed (fs.inotify.max_queued_events): "
            "every lower entry is forgotten");
        m_listener.everything_changed();
        if (!m_failed) {
            watch_tree("");  // directories made meanwhile; the others keep their watches
        }
        return;
    }
    std::string dir;
    {
        LockGuard lock(m_mutex);
        auto it = m_dirs.find(wd);
        if (it == m_dirs.end()) {
            return;  // a watch already dropped
        }
        dir = it->second;
        if (mask & IN_IGNORED) {
            m_dirs.erase(it);
            return;
        }
    }
    if (name.empty()) {
        if (dir.empty() && (mask & (IN_DELETE_SELF | IN_MOVE_SELF))) {
            spdlog::warn("the source directory was removed or moved while mounted");
            m_listener.everything_changed();
        } else if (mask & IN_ATTRIB) {
            m_listener.content_changed(dir);
        }
        return;
    }
    std::string path = join_path(dir, name);
    if (mask & k_entry_events) {
        if ((mask & IN_ISDIR) && (mask & (IN_DELETE | IN_MOVED_FROM))) {
            forget_tree(path);
        }
        m_listener.entry_changed(dir, name);
        if ((mask & IN_ISDIR) && (mask & (IN_CREATE | IN_MOVED_TO)) && !m_failed) {
            watch_tree(path);
        }
    }
    if (mask & k_content_events) {
        m_listener.content_changed(path);
    }
}

void SourceWatch::run() {
    if (watch_tree("") && !m_failed) {
        m_active.store(true, std::memory_order_release);
        spdlog::info("watching {} source directories", directories());
        m_listener.watching(true, fmt::format("{} directories", directories()));
    }
    {
        LockGuard lock(m_mutex);
        m_first_walk_done = true;
    }
    m_first_walk.notify_all();
    alignas(inotify_event) char buf[64 * 1024];
    pollfd fds[2] = {{m_inotify.get(), POLLIN, 0}, {m_stop.get(), POLLIN, 0}};
    for (;;) {
        if (::poll(fds, 2, -1) < 0 && errno != EINTR) {
            give_up(fmt::format("poll: {}", std::strerror(errno)));
            return;
        }
        if (fds[1].revents & POLLIN) {
            return;
        }
        for (;;) {
            ssize_t n = ::read(m_inotify.get(), buf, sizeof buf);
            if (n <= 0) {
                break;  // EAGAIN: drained
            }
            for (char* p = buf; p < buf + n;) {
                auto* event = reinterpret_cast<inotify_event*>(p);
                std::string_view name = event->len > 0 ? std::string_view(event->name) : "";
                handle(event->wd, event->mask, name);
                p += sizeof(inotify_event) + event->len;
            }
        }
    }
}

}  // namespace fbfs
