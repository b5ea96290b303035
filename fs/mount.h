// Mounting and unmounting volumes: the checks before a mount, the daemon that serves it, and the
// clean (or forced, for a dead daemon) unmount. What `fbfs mount`, `umount` and `run` do.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "store/base/error.h"

namespace fbfs {

struct MountRequest {
    std::filesystem::path store;
    std::string volume = "default";
    std::filesystem::path mountpoint;
    std::filesystem::path source;  // the checkout to show under the volume; empty: none
    bool foreground = false;       // serve in this process, logging to stderr
    bool allow_other = false;      // let other users use the mount
    bool debug = false;            // trace every FUSE request
    std::string remote;            // cache to fetch missing objects from; empty: the store's origin
    // When the mount ends, drop other volumes as `fbfs gc --max-size` does (volume_gc.h).
    std::optional<std::uint64_t> max_store_size;
};

// Checks everything a user can get wrong (mountpoint, /dev/fuse, fusermount3, store, volume
// lock), then serves the volume. In the background (the default) it returns once the mount is
// usable, with the daemon detached; in the foreground it returns when the mount goes away.
// Every failure is an Error whose message says what is wrong and how to fix it.
Result<void> mount_volume(const MountRequest& request);

// How long `fbfs umount` waits for a daemon to exit once its mount is gone.
inline constexpr std::chrono::milliseconds k_daemon_exit_limit{30'000};

// Unmounts an fbfs mount and waits until its daemon has saved everything and exited with all its
// threads (until then it holds the volume's lock). A dead mount ("Transport endpoint is not
// connected") is unmounted too. Fails if the mount cannot be detached, or if the daemon is still
// there `exit_limit` after it was (ETIMEDOUT, naming its pid).
Result<void> unmount_volume(const std::filesystem::path& mountpoint,
                            std::chrono::milliseconds exit_limit = k_daemon_exit_limit);

// Mounts, runs `command` with the mountpoint as its working directory, unmounts, and returns
// the command's exit status (128 + signal number if it was killed). Fails if the mount or the
// unmount fails, or if no process could be started for the command (it unmounts first).
Result<int> run_in_mount(const MountRequest& request, const std::vector<std::string>& command);

}  // namespace fbfs
