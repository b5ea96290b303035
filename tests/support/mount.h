// Mount: one `fbfs mount` of a store for a test, unmounted when it goes out of scope.
//
// The constructor runs `fbfs mount --store STORE [extra args] MOUNTPOINT` (creating the
// mountpoint if missing) and throws std::runtime_error, with what fbfs printed, unless it exits 0
// with a FUSE filesystem mounted there. unmount() runs `fbfs umount`; it throws if that fails,
// after forcing the mount away. The destructor never throws and never leaves a mount behind: if
// `fbfs umount` fails it falls back to `fusermount3 -u -z`, then `umount -l`.
//
// MountedStore: a TempDir holding a store (tmp/store) mounted at tmp/mnt, for the usual test.
//
// Not thread-safe; one test thread owns each Mount.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace fbfs::test {

class Mount {
public:
    Mount(std::filesystem::path store, std::filesystem::path mountpoint,
          std::vector<std::string> extra_args = {});
    ~Mount();
    Mount(const Mount&) = delete;
    Mount& operator=(const Mount&) = delete;

    // Runs `fbfs umount`; does nothing if not mounted. Throws std::runtime_error if fbfs fails or
    // the mount is still there afterwards (the mount is forced away first).
    void unmount();
    // unmount(), then mounts the same store at the same mountpoint with the same arguments.
    void remount();
    // Mounts again after unmount(); throws as the constructor does. Does nothing if mounted.
    void mount();

    bool mounted() const { return m_mounted; }
    const std::filesystem::path& store() const { return m_store; }
    const std::filesystem::path& path() const { return m_mountpoint; }
    std::filesystem::path operator/(const std::string& name) const { return m_mountpoint / name; }

private:
    std::filesystem::path m_store;
    std::filesystem::path m_mountpoint;
    std::vector<std::string> m_extra_args;
    bool m_mounted = false;
};

// One line of /proc/self/mountinfo.
struct MountInfo {
    std::string device;         // "major:minor"
    std::string source;         // "fbfs:<volume>:<pid>" for fbfs
    std::string fstype;         // "fuse.fbfs"
    std::string super_options;  // "rw,user_id=1000,group_id=1000"
};

// Every mount at `path` (compared as given, after undoing mountinfo's octal escapes), bottom first:
// the last one is what is visible. Read from /proc/self/mountinfo without touching the path, so it
// cannot hang on a dead mount. Empty if nothing is mounted there or mountinfo cannot be read.
std::vector<MountInfo> mounts_at(const std::filesystem::path& path);

// True if a FUSE filesystem is mounted at `mountpoint` (read from /proc/self/mountinfo, without
// touching the filesystem, so it cannot hang on a stuck daemon).
bool is_fuse_mounted(const std::filesystem::path& mountpoint);

// Detaches whatever is mounted at `mountpoint` with `fusermount3 -u -z`, then `umount -l`, and
// aborts its FUSE connection if fusectl is available. Never throws; returns true if nothing is
// mounted there afterwards.
bool force_unmount(const std::filesystem::path& mountpoint) noexcept;

// The pid of the daemon serving `mountpoint`, from the mount's source "fbfs:<volume>:<pid>";
// nullopt if no fbfs mount is visible there. (fs/process.h's wait_until_exited waits for it.)
std::optional<pid_t> daemon_pid(const std::filesystem::path& mountpoint);

// For tests that run `fbfs mount` themselves: whatever is mounted at `mountpoint` when the guard
// goes out of scope is unmounted with `fbfs umount` (forced if that fails), and its daemon waited
// for, 10 s at most, then killed by pid (a daemon the test started, stuck). Never throws.
class MountpointGuard {
public:
    explicit MountpointGuard(std::filesystem::path mountpoint)
        : m_mountpoint(std::move(mountpoint)) {}
    ~MountpointGuard();
    MountpointGuard(const MountpointGuard&) = delete;
    MountpointGuard& operator=(const MountpointGuard&) = delete;

private:
    std::filesystem::path m_mountpoint;
};

// What the daemon serving `volume` of `store` says of its source (the first line of
// <store>/log/<volume>.source, as `fbfs stat MOUNTPOINT` shows it), or "" if nothing yet.
std::string source_status(const std::filesystem::path& store,
                          const std::string& volume = "default");

struct MountedStore {
    explicit MountedStore(std::vector<std::string> extra_args = {});

    std::filesystem::path store() const { return tmp / "store"; }
    std::filesystem::path operator/(const std::string& name) const { return mount / name; }

    // Declared first so it is destroyed last, after the mount under it is gone.
    TempDir tmp;
    Mount mount;
};

}  // namespace fbfs::test
