#include "fs/mount.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "fs/fuse_device.h"
#include "fs/kernel_warmer.h"
#include "fs/mount_checks.h"
#include "fs/mount_daemon.h"
#include "fs/mount_table.h"
#include "fs/process.h"

namespace fbfs {

namespace fs = std::filesystem;

namespace {

// Takes the mount away from the kernel: umount2 as root, else the setuid fusermount3 (never an
// unprivileged copy earlier on PATH). `dead`: nobody serves it, so detach it whatever holds it.
Result<void> detach_mount(const fs::path& mountpoint, bool dead) {
    auto busy = [&] {
        return make_error(EBUSY, fmt::format("could not unmount {}: it is busy (close the files "
                                             "and shells using it, then try again)",
                                             mountpoint.string()));
    };
    if (::geteuid() == 0) {
        if (::umount2(mountpoint.c_str(), dead ? MNT_DETACH : 0) != 0) {
            return errno == EBUSY
                       ? busy()
                       : errno_error(fmt::format("could not unmount {}", mountpoint.string()));
        }
        return {};
    }
    auto fusermount = find_fusermount();
    if (!fusermount) {
        return std::unexpected(fusermount.error());
    }
    std::vector<std::string> command{fusermount->string(), "-u"};
    if (dead) {
        command.push_back("-z");
    }
    command.push_back(mountpoint.string());
    std::string said;
    auto status = run_program(command, {}, &said);
    if (!status) {
        return make_error(
            status.error().code,
            fmt::format("could not unmount {}: {}", mountpoint.string(), status.error().message));
    }
    if (*status == 0) {
        return {};
    }
    if (said.find("busy") != std::string::npos) {
        return busy();
    }
    while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) {
        said.pop_back();
    }
    if (said.find("/etc/mtab") != std::string::npos) {
        said += " (fusermount3 needs it: as root, ln -s ../proc/self/mounts /etc/mtab)";
    }
    return make_error(EIO, fmt::format("could not unmount {}: {}", mountpoint.string(),
                                       said.empty() ? fmt::format("{} exited with status {}",
                                                                  fusermount->string(), *status)
                                                    : said));
}

}  // namespace

Result<void> mount_volume(const MountRequest& request_in) {
    MountRequest request = request_in;
    request.mountpoint = fs::absolute(request.mountpoint).lexically_normal();
    request.store = fs::absolute(request.store).lexically_normal();
    if (!request.source.empty()) {
        request.source = fs::absolute(request.source).lexically_normal();
    }
    if (auto ok = check_mount_request(request); !ok) {
        return ok;
    }
    if (!request.foreground) {
        return start_daemon(request);
    }
    return serve_volume(request, [] {});
}

Result<void> unmount_volume(const fs::path& mountpoint_in, std::chrono::milliseconds exit_limit) {
    fs::path mountpoint = fs::absolute(mountpoint_in).lexically_normal();
    auto entry = find_mount(mountpoint);
    if (!entry || entry->fstype != "fuse.fbfs") {
        return make_error(EINVAL, fmt::format("{} is not an fbfs mount (nothing to unmount)",
                                              mountpoint.string()));
    }
    struct stat st {};
    bool dead =
        ::stat(mountpoint.c_str(), &st) != 0 && (errno == ENOTCONN || errno == ECONNABORTED);
    auto pid = daemon_pid(*entry);
    if (pid && !dead) {
        ::kill(*pid, k_unmount_signal);  // the daemon's warm-up lets go of the mount
    }
    // Busy for a moment while the warm-up closes the directory it lists; busy for longer is
    // someone else's open file.
    auto detached = detach_mount(mountpoint, dead);
    for (int tries = 0; !detached && detached.error().code == EBUSY && tries < 40; ++tries) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        detached = detach_mount(mountpoint, dead);
    }
    if (!detached) {
        return detached;
    }
    // The daemon saves what is left and exits once the kernel tells it the mount is gone; its
    // volume lock and /dev/fuse go with its last thread, which may outlive its first.
    if (pid && !wait_until_exited(*pid, exit_limit)) {
        return make_error(
            ETIMEDOUT, fmt::format("{} is unmounted, but its fbfs daemon (pid {}) has not exited "
                                   "{} s later and still holds its volume (wait for it, or end "
                                   "it: kill {})",
                                   mountpoint.string(), *pid,
                                   std::chrono::duration<double>(exit_limit).count(), *pid));
    }
    return {};
}

Result<int> run_in_mount(const MountRequest& request, const std::vector<std::string>& command) {
    MountRequest background = request;
    background.foreground = false;
    TRY(mount_volume(background));
    // The command gets the terminal's signals; this process waits and then unmounts.
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);
    auto status = run_program(command, fs::absolute(request.mountpoint));
    auto unmounted = unmount_volume(request.mountpoint);
    if (!unmounted) {
        return std::unexpected(unmounted.error());
    }
    return status;
}

}  // namespace fbfs
