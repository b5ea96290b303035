// SourceWatch: tells when an overlay's source tree changes behind the mount (an editor, a
// `git checkout`), so the kernel may cache lower entries as long as upper ones.
//
// It keeps an inotify watch on every directory of the tree, adding one for each directory as it
// appears and dropping those of directories that go, and reports each change to a SourceListener
// from a thread of its own (never a FUSE worker, so the listener may call into the kernel and
// wait). Until the first walk has watched every directory, and forever after a watch could not
// be added (fs.inotify.max_user_watches, an unreadable directory), it is not active: then the
// mount must fall back to short timeouts. When the kernel dropped events (its queue overflowed),
// the listener hears everything_changed() and the tree is walked again for new directories.
//
// Thread-safe: active(), directories() and status() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "fs/lower_layer.h"
#include "store/base/error.h"
#include "store/base/thread_safety.h"
#include "store/base/unique_fd.h"

namespace fbfs {

class SourceListener {
public:
    virtual ~SourceListener() = default;
    // The entry `name` of directory `dir` (relative, "" for the root) appeared, went, or was
    // moved in or out.
    virtual void entry_changed(const std::string& dir, std::string_view name) = 0;
    // The data or the attributes of the file or directory at `path` changed.
    virtual void content_changed(const std::string& path) = 0;
    // Changes were lost (the event queue overflowed, the watch stopped): whatever was learnt of
    // the tree may be stale.
    virtual void everything_changed() = 0;
    // The watch became complete (`active`; `detail` says how many directories), or stopped
    // being so for good (`detail` says why).
    virtual void watching(bool active, const std::string& detail) = 0;
};

class SourceWatch {
public:
    // Starts watching `lower` on a new thread, which first walks the tree. Fails only if inotify
    // itself cannot be used (then the mount goes without: see status()).
    static Result<std::unique_ptr<SourceWatch>> start(const LowerLayer& lower,
                                                      SourceListener& listener);
    ~SourceWatch();  // stops the thread; no listener call happens after it returns
    SourceWatch(const SourceWatch&) = delete;
    SourceWatch& operator=(const SourceWatch&) = delete;

    // True while every directory of the tree is watched, so no change can go unreported.
    bool active() const { return m_active.load(std::memory_order_acquire); }
    // Waits until the first walk is over (active() or failed), or `limit`; false on the latter.
    bool wait_first_walk(std::chrono::milliseconds limit) const;
    // Why it is not active ("" while it is, or while the first walk runs).
    std::string status() const;
    std::size_t directories() const;

private:
    SourceWatch(const LowerLayer& lower, SourceListener& listener, UniqueFd inotify, UniqueFd stop);
    void run();
    // Watches `dir` and every directory below it; false if a watch could not be added.
    bool watch_tree(const std::string& dir);
    bool add_watch(const std::string& dir);
    void forget_tree(const std::string& dir);
    void handle(int wd, std::uint32_t mask, std::string_view name);
    void give_up(const std::string& why);

    const LowerLayer& m_lower;
    SourceListener& m_listener;
    UniqueFd m_inotify;
    UniqueFd m_stop;  // an eventfd: written by the destructor to wake the thread
    std::atomic<bool> m_active{false};
    std::atomic<bool> m_failed{false};
    std::atomic<bool> m_stopping{false};

    // Guards m_dirs, m_status and m_first_walk_done. Held only around their updates, never
    // across a listener call.
    mutable Mutex m_mutex;
    mutable std::condition_variable_any m_first_walk;
    std::unordered_map<int, std::string> m_dirs GUARDED_BY(m_mutex);  // watch descriptor -> dir
    std::string m_status GUARDED_BY(m_mutex);
    bool m_first_walk_done GUARDED_BY(m_mutex) = false;
    std::thread m_thread;  // last: started once everything above is in place
};

}  // namespace fbfs
