// Warming a fresh mount: its daemon lists every directory through the mount, so the kernel's
// dentry and attribute caches are filled a directory at a time (READDIRPLUS answers a whole
// directory, entries and attributes, in one request; a lookup answers one name). A runner's
// first no-op build then finds every file already known instead of paying one round trip each,
// and every lower file's content-stable mtime is decided on the way.
//
// The walk is breadth-first over the merged view, skipping `.git` (the build reads a few of its
// files, which are looked up when it does). It runs in the foreground for at most a budget, after
// which `foreground_done` is called (the daemon then tells `fbfs mount` that the mount is ready),
// and goes on in the background at low CPU and I/O priority until done, stopped, or asked to let
// go of the mount (unmount_requested(): `fbfs umount` asks first, so that no directory of the
// mount is open when it unmounts).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stop_token>

namespace fbfs {

struct WarmResult {
    std::uint64_t directories = 0;
    std::uint64_t entries = 0;
    bool complete = false;  // every directory was listed
};

// Walks `mountpoint` as described above. `background_tid` is set to the walking thread's id once
// it is in the background, so the daemon can serve its requests at low priority too.
// `on_file` is called with the inode number of each regular file listed in the foreground
// (before anyone else uses the mount), for the daemon to fill its pages (Filesystem::prefill).
WarmResult warm_kernel_caches(const std::filesystem::path& mountpoint, std::stop_token stop,
                              std::chrono::milliseconds foreground,
                              const std::function<void()>& foreground_done,
                              const std::function<void(ino_t)>& on_file,
                              std::atomic<pid_t>& background_tid);

// Set (from a signal handler) when `fbfs umount` is about to unmount: walks stop at once.
// SIGURG is the signal, because its default action is to be ignored: an older daemon that does
// not handle it is not harmed.
void request_unmount_from_signal();
bool unmount_requested();
inline constexpr int k_unmount_signal = SIGURG;

}  // namespace fbfs
