// InodeTable: what the kernel and open handles hold of each inode, kept apart from the stored
// inode (EdenFS's InodeLifetime split).
//
// The kernel's lookup count: +1 for every entry reply (lookup, create, mkdir, mknod, symlink,
// link, readdirplus), -n on forget; an underflow is a bug and aborts. Open handles share one
// OpenInode per inode while any is open.
//
// Thread-safe. m_mutex guards m_entries; it is never held across I/O or a FUSE reply. Lock order:
// this mutex first, then OpenInode's.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fs/open_inode.h"
#include "store/base/thread_safety.h"
#include "store/meta/schema.h"

namespace fbfs {

class InodeTable {
public:
    // Counts one kernel lookup of `ino`, found at `path` (relative to the mount's root; kept
    // for overlay mounts, which find lower files by path; empty otherwise).
    void remember(InodeNumber ino, const std::string& path = {});
    // The path `ino` was last found at, if the kernel holds it.
    std::optional<std::string> path_of(InodeNumber ino) const;
    // Every inode the kernel holds with the path it was found at (overlay mounts), copied out.
    std::vector<std::pair<InodeNumber, std::string>> known_paths() const;
    // After a rename: `ino` is now at `path`.
    void set_path(InodeNumber ino, const std::string& path);
    // After a whiteout hid it: `ino` has no path any more, until it is found again.
    void clear_path(InodeNumber ino);
    // Drops `count` kernel references; returns true when the kernel holds none any more.
    bool forget(InodeNumber ino, std::uint64_t count);
    // How many lookups of `ino` the kernel holds (what it has not forgotten yet).
    std::uint64_t lookups(InodeNumber ino) const;

    // Registers a handle of `ino` and returns its OpenInode, made by `make` for the first handle.
    // `make` runs under the table's lock, so it reads the stored inode after any commit of the
    // OpenInode before it; it must do no more than that. If it returns nullptr, nothing is
    // registered and nullptr is returned.
    template <class Make>
    std::shared_ptr<OpenInode> open(InodeNumber ino, Make make) EXCLUDES(m_mutex) {
        LockGuard lock(m_mutex);
        auto& entry = m_entries[ino];
        if (!entry.open) {
            entry.open = make();
            if (!entry.open) {
                auto it = m_entries.find(ino);
                erase_if_unused(it);
                return nullptr;
            }
        }
        ++entry.handles;
        return entry.open;
    }
    // Unregisters a handle; returns true when it was the last one of `ino`.
    bool release(InodeNumber ino);
    // The OpenInode of `ino` if it has open handles, else nullptr.
    std::shared_ptr<OpenInode> find_open(InodeNumber ino) const;
    // True if neither the kernel nor a handle holds `ino`.
    bool unused(InodeNumber ino) const;

private:
    struct Entry {
        std::uint64_t lookups = 0;
        std::uint64_t handles = 0;
        std::string path;
        bool hidden = false;              // its lower file is hidden by a whiteout
        std::shared_ptr<OpenInode> open;  // while handles > 0
    };
    void erase_if_unused(std::unordered_map<InodeNumber, Entry>::iterator it) REQUIRES(m_mutex);

    mutable Mutex m_mutex;
    std::unordered_map<InodeNumber, Entry> m_entries GUARDED_BY(m_mutex);
};

}  // namespace fbfs
