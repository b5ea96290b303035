#include "fs/mount_checks.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string_view>

#include "fs/fuse_device.h"
#include "fs/lower_layer.h"
#include "fs/mount_table.h"
#include "fs/remote_objects.h"
#include "store/meta/store.h"
#include "store/meta/volume_lock.h"

namespace fbfs {

namespace fs = std::filesystem;

namespace {

Result<void> check_mountpoint(const fs::path& mountpoint) {
    auto name = mountpoint.string();
    struct stat st {};
    if (::stat(mountpoint.c_str(), &st) != 0) {
        // ECONNABORTED: a killed daemon whose threads are still exiting.
        if (errno == ENOTCONN || errno == ECONNABORTED) {
            return make_error(ENOTCONN,
                              fmt::format("mountpoint {} is a dead mount (run fbfs umount "
                                          "{} first)",
                                          name, name));
        }
        if (errno == ENOENT) {
            return make_error(ENOENT, fmt::format("mountpoint {} does not exist (create it: "
                                                  "mkdir -p {})",
                                                  name, name));
        }
        return errno_error(fmt::format("cannot use mountpoint {}", name));
    }
    if (!S_ISDIR(st.st_mode)) {
        return make_error(ENOTDIR, fmt::format("mountpoint {} is not a directory (use an empty "
                                               "directory)",
                                               name));
    }
    if (auto mounted = find_mount(mountpoint); mounted && mounted->fstype == "fuse.fbfs") {
        return make_error(EBUSY, fmt::format("{} is already an fbfs mount (run fbfs umount {} "
                                             "first)",
                                             name, name));
    }
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(mountpoint.c_str()), ::closedir);
    if (!dir) {
        return errno_error(fmt::format("cannot read mountpoint {}", name));
    }
    while (dirent* entry = ::readdir(dir.get())) {
        std::string_view n = entry->d_name;
        if (n != "." && n != "..") {
            return make_error(ENOTEMPTY, fmt::format("mountpoint {} is not empty (use an empty "
                                                     "directory)",
                                                     name));
        }
    }
    return {};
}

Result<void> check_fuse_available() {
    if (auto device = check_fuse_device(); !device) {
        return device;
    }
    if (::geteuid() != 0) {
        TRY(find_fusermount());
    }
    return {};
}

// The source must be a directory that neither is, nor holds, nor sits inside the mountpoint:
// each of those would make the mount serve itself.
Result<void> check_source(const fs::path& source, const fs::path& mountpoint) {
    TRY(LowerLayer::open(source));
    std::error_code ec;
    auto src = fs::weakly_canonical(source, ec).string() + "/";
    auto mnt = fs::weakly_canonical(mountpoint, ec).string() + "/";
    if (src.starts_with(mnt) || mnt.starts_with(src)) {
        return make_error(ELOOP, fmt::format("source {} and mountpoint {} overlap (the mount would "
                                             "contain itself): mount somewhere outside the "
                                             "source",
                                             source.string(), mountpoint.string()));
    }
    return {};
}

}  // namespace

// Checks what can be checked before forking: the daemon reports the rest.
Result<void> check_mount_request(const MountRequest& request) {
    if (auto ok = check_volume_name(request.volume); !ok) {
        return ok;
    }
    // The source first: one inside the mountpoint would otherwise read as "not empty".
    if (!request.source.empty()) {
        if (auto ok = check_source(request.source, request.mountpoint); !ok) {
            return ok;
        }
    }
    if (auto ok = check_mountpoint(request.mountpoint); !ok) {
        return ok;
    }
    if (auto ok = check_mount_remote(request.remote); !ok) {
        return ok;
    }
    if (auto ok = check_fuse_available(); !ok) {
        return ok;
    }
    // Opening the store here (and closing it before any fork: LMDB must not cross one) creates
    // a missing store and reports an unusable one while the user still reads stderr.
    TRY(Store::open(request.store, Store::Mode::create_if_missing));
    if (auto pid = VolumeLock::holder(request.store, request.volume)) {
        return std::unexpected(VolumeLock::busy(request.store, request.volume, *pid,
                                                "unmount it with fbfs umount, or mount another "
                                                "--volume"));
    }
    return {};
}

}  // namespace fbfs
