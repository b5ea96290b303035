// Filesystem: the POSIX operations a mount serves, over one VolumeTree, in fbfs's own terms.
//
// Every operation returns a Result whose Error code is the errno to reply with; fuse_server.cpp
// is the one place that turns these into FUSE replies. Permission checks are the kernel's
// (default_permissions); this class keeps ownership, times, link counts and the kernel's lookup
// counts right.
//
// With a LowerLayer it is an overlay (overlay.cpp): the source tree under the volume, merged by
// name, upper wins. A lower entry's inode number is derived from its path, so the kernel knows
// it by the same number before and after it is copied up into the volume (which keeps that
// number). Changes copy lower files up first; removing a lower name leaves a whiteout; a
// directory made over a whiteout, or moved, is opaque. Lower files show content-stable mtimes
// (StampBook).
//
// Thread-safe: called from every FUSE worker thread at once.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fs/inode_table.h"
#include "fs/kernel_cache.h"
#include "fs/lower_layer.h"
#include "fs/open_inode.h"
#include "fs/source_watch.h"
#include "fs/stamp_book.h"
#include "store/base/error.h"
#include "store/base/thread_safety.h"
#include "store/meta/store.h"
#include "store/meta/volume_tree.h"

namespace fbfs {

// Who asks: the uid, gid and supplementary-group-free identity of the calling process.
struct Caller {
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
};

// An open file: one per open(2) the kernel passed on. Either a volume file (`inode`) or, read
// only, a lower file of an overlay (`lower`).
struct FileHandle {
    InodeNumber ino = 0;
    bool writable = false;
    bool keep_cache = true;  // the kernel's cached pages of this file are still right
    std::shared_ptr<OpenInode> inode;
    SharedFd lower;
};

// A directory listing taken at opendir, so readdir offsets stay valid while entries change.
struct DirHandle {
    struct Entry {
        std::string name;
        InodeNumber ino = 0;
        std::uint8_t type = 0;
    };
    std::vector<Entry> entries;  // "." and ".." first
    // The kernel may keep the listing until told otherwise: every change to the directory
    // comes through the mount, or from a watched source.
    bool cacheable = false;
};

// Which attributes setattr changes (FUSE_SET_ATTR_* bits, restated so fs/ callers need no FUSE).
struct AttrChange {
    std::optional<std::uint32_t> mode;
    std::optional<std::uint32_t> uid;
    std::optional<std::uint32_t> gid;
    std::optional<std::uint64_t> size;
    std::optional<TimeNs> atime;
    std::optional<TimeNs> mtime;
    std::optional<TimeNs> ctime;
    // FATTR_KILL_SUIDGID: also drop setuid, and setgid if group-executable (killpriv_channel.h).
    bool drop_setid = false;
};

class Filesystem : public SourceListener {
public:
    explicit Filesystem(VolumeTree tree, std::optional<LowerLayer> lower = std::nullopt);
    ~Filesystem() override;
    Filesystem(const Filesystem&) = delete;
    Filesystem& operator=(const Filesystem&) = delete;

    VolumeTree& tree() { return m_tree; }
    // What the kernel and open handles hold (for tests and diagnostics).
    const InodeTable& inodes() const { return m_inodes; }
    bool has_lower() const { return m_lower.has_value(); }
    const ObjectPool& pool() const { return m_tree.store().pool(); }

    // Entry operations: each successful one counts one kernel lookup of the inode it returns.
    Result<struct stat> lookup(InodeNumber parent, std::string_view name);
    void forget(InodeNumber ino, std::uint64_t count);
    // How long the kernel may trust what it was told about `ino`: long for volume entries (every
    // change to them comes through the mount), and for an overlay's lower entries while the
    // source is watched (every change to it is pushed to the kernel); short for lower entries
    // otherwise, which the user may change behind the mount's back.
    double cache_timeout(InodeNumber ino) const;
    // How long the kernel may remember that `name` does not exist in `parent`. An overlay
    // remembers the names it said so of, to take them back if its source's changes are lost.
    double negative_timeout(InodeNumber parent, std::string_view name);

    // Where notifications go from now on (must outlive its use: stop_watching() before it goes).
    // An overlay then watches its source (SourceWatch) and pushes each change made there.
    void attach_kernel(KernelCache& kernel);
    void stop_watching();
    // Waits (at most `limit`) until the source's first walk is over, so that what the kernel
    // learns next is cached as long as the watch allows.
    void wait_source_watched(std::chrono::milliseconds limit) const {
        if (m_watch) {
            m_watch->wait_first_walk(limit);
        }
    }
    // For a fresh mount's warm-up: puts a small volume file's bytes in the kernel's page cache
    // (a build's no-op reads its depfiles), within a budget for the whole mount. Never from a
    // thread that answers requests.
    void prefill(InodeNumber ino);

    // SourceListener: called from the watch's thread.
    void entry_changed(const std::string& dir, std::string_view name) override;
    void content_changed(const std::string& path) override;
    void everything_changed() override;
    void watching(bool active, const std::string& detail) override;
    Result<struct stat> mknod(InodeNumber parent, std::string_view name, std::uint32_t mode,
                              std::uint64_t rdev, const Caller& caller);
    Result<struct stat> mkdir(InodeNumber parent, std::string_view name, std::uint32_t mode,
                              const Caller& caller);
    Result<struct stat> symlink(std::string_view target, InodeNumber parent, std::string_view name,
                                const Caller& caller);
    Result<struct stat> link(InodeNumber ino, InodeNumber parent, std::string_view name);

    Result<struct stat> getattr(InodeNumber ino);
    Result<struct stat> setattr(InodeNumber ino, const AttrChange& change, const Caller& caller);
    Result<std::string> readlink(InodeNumber ino);
    // Drops setuid, and setgid if group-executable, from a non-directory, as a truncating open
    // or a write by a caller without CAP_FSETID must (killpriv_channel.h), and makes the kernel
    // ask for the attributes again. Writes only if a bit goes.
    Result<void> drop_setid(InodeNumber ino);

    // Extended attributes (xattrs.cpp), with ext4's rules (store/meta/xattr.h): names in `user.`,
    // `trusted.` and `security.`; `system.` names (POSIX ACLs) and unknown namespaces are
    // EOPNOTSUPP, as on an ext4 mounted with noacl. A lower file shows its source file's
    // attributes until it is copied up, and the copy carries them. Setting or removing one
    // copies the file up, and moves its ctime.
    Result<std::string> getxattr(InodeNumber ino, std::string_view name);
    // The names of `ino`'s attributes; `trusted.` ones only to root (ext4 lists them only to
    // CAP_SYS_ADMIN).
    Result<std::vector<std::string>> listxattr(InodeNumber ino, const Caller& caller);
    // `flags` are setxattr(2)'s XATTR_CREATE and XATTR_REPLACE.
    Result<void> setxattr(InodeNumber ino, std::string_view name, std::string_view value,
                          int flags);
    Result<void> removexattr(InodeNumber ino, std::string_view name);
    Result<void> unlink(InodeNumber parent, std::string_view name);
    Result<void> rmdir(InodeNumber parent, std::string_view name);
    Result<void> rename(InodeNumber parent, std::string_view name, InodeNumber new_parent,
                        std::string_view new_name, unsigned flags);

    // Files. `flags` are open(2)'s.
    Result<std::unique_ptr<FileHandle>> open(InodeNumber ino, int flags);
    struct Created {
        struct stat attr;
        std::unique_ptr<FileHandle> handle;
    };
    Result<Created> create(InodeNumber parent, std::string_view name, std::uint32_t mode, int flags,
                           const Caller& caller);
    Result<void> flush(FileHandle& handle);
    Result<void> fsync(FileHandle& handle);
    void release(std::unique_ptr<FileHandle> handle);
    // fallocate(2) with ext4's modes that FUSE passes on (OpenInode::allocate); EOPNOTSUPP for
    // any other.
    Result<void> fallocate(FileHandle& handle, int mode, off_t offset, off_t length);
    // lseek(2) with SEEK_DATA or SEEK_HOLE (the kernel answers the other whences itself): where
    // the next data or hole of the open file starts, as the file below says; ENXIO past its end.
    Result<off_t> seek(FileHandle& handle, off_t offset, int whence);

    Result<std::unique_ptr<DirHandle>> opendir(InodeNumber ino);
    // True when the kernel may cache every directory's listing with no opendir at all: every
    // change comes through the mount, or from a watched source.
    bool listings_always_cacheable() const { return !m_lower || source_watched(); }

    Result<struct statvfs> statfs() const;

    // The thread id of the daemon's background warm-up (kernel_warmer.h) while it runs, else 0:
    // requests it makes are served at its low priority.
    std::atomic<pid_t>& background_caller() { return m_background_caller; }
    // The warm-up is over: says so in the source's status (for `fbfs stat`), with how many
    // files' content came from git's index and how many were hashed.
    void warmed_up(std::uint64_t directories, std::uint64_t entries, double seconds, bool complete);

private:
    // An inode as the overlay sees it: its volume record, its lower file, or both (a merged
    // directory). Without a lower layer only `upper` is ever set.
    struct Node {
        InodeNumber ino = 0;
        std::string path;  // relative to the mount's root; overlay only
        std::optional<InodeRecord> upper;
        std::optional<struct stat> lower;
        bool is_dir() const { return upper ? upper->is_dir() : S_ISDIR(lower->st_mode); }
    };

    // overlay.cpp
    Result<Node> resolve(InodeNumber ino) const;
    Result<struct stat> attr(const Node& node);
    // Whether the lower layer shows through directory `dir` (it is not opaque and exists below).
    bool merges_lower(const Node& dir) const;
    // How many lower subdirectories show through the merged directory `dir`.
    Result<std::size_t> lower_subdirs_shown(const Node& dir) const;
    // Whether the source's filesystem gives a directory 2 + its subdirectories as link count
    // (ext4, xfs, tmpfs; not btrfs), judged by the source's root.
    static bool counts_subdirs(const LowerLayer& lower);
    // The lower entry `name` of directory `dir`, if it shows through.
    std::optional<struct stat> lower_child(const Node& dir, std::string_view name) const;
    // Makes sure `ino` has a volume record, copying a lower file or directory up if needed.
    Result<void> copy_up(InodeNumber ino);
    // The volume inode of the directory at `path`, copying lower directories up on the way.
    Result<InodeNumber> upper_dir(const std::string& path);
    Result<std::vector<DirHandle::Entry>> merged_entries(const Node& dir) const;
    // EEXIST if a lower entry shows at `name` in `dir` (the volume's create checks its own).
    Result<void> check_free(const Node& dir, std::string_view name) const;
    // ENOTEMPTY unless directory `dir` shows no entries.
    Result<void> check_empty(const Node& dir) const;
    // The number of the lower entry at `path` of type `mode` (its S_IFMT bits).
    static InodeNumber lower_ino(const std::string& path, mode_t mode);
    std::string child_path(InodeNumber parent, std::string_view name) const;
    Result<std::unique_ptr<FileHandle>> open_lower(const Node& node);
    // xattrs.cpp: the source file's attributes that a volume can hold, in name order, as many as
    // fit one inode: what a lower entry shows, and what its copy-up carries.
    std::vector<Xattr> lower_xattrs(const std::string& path, mode_t mode) const;
    // The attributes `node` shows: its volume record's, else its lower file's.
    Result<std::vector<Xattr>> shown_xattrs(const Node& node) const;

    // Renames in an overlay: what must happen around the volume's rename.
    struct RenamePlan {
        InodeNumber moved = 0;         // the inode that moves to the new name
        InodeNumber exchanged = 0;     // with RENAME_EXCHANGE, the one that moves back
        bool whiteout_source = false;  // the old name must keep hiding a lower entry
        bool opaque = false;           // a moved directory must not merge with what is below
    };
    Result<RenamePlan> prepare_rename(InodeNumber parent, std::string_view name,
                                      InodeNumber new_parent, std::string_view new_name,
                                      unsigned flags);
    // After the volume's rename: the paths the kernel's inodes are found at.
    void finish_rename(const RenamePlan& plan, InodeNumber parent, std::string_view name,
                       InodeNumber new_parent, std::string_view new_name);
    Result<void> remove_entry(InodeNumber parent, std::string_view name, bool dir);

    Result<InodeRecord> record(InodeNumber ino) const;
    struct stat to_stat(InodeNumber ino, const InodeRecord& record) const;
    // The 512-byte blocks a regular file's content takes in the store (its staging file or its
    // object), or nullopt if that cannot be told.
    std::optional<std::uint64_t> stored_blocks(InodeNumber ino, const InodeRecord& record) const;
    Result<struct stat> make_node(InodeNumber parent, std::string_view name, InodeRecord record,
                                  const Caller& caller);
    // Deletes an inode with no links once neither the kernel nor a handle holds it.
    Result<void> drop_if_unused(InodeNumber ino);
    // Deletes an inode with no links, and the objects nothing names any more.
    Result<void> drop(InodeNumber ino);
    // Registers a handle of `ino` and returns its OpenInode (see InodeTable::open).
    Result<std::shared_ptr<OpenInode>> open_inode(InodeNumber ino);
    Result<void> truncate(InodeNumber ino, std::uint64_t size);

    VolumeTree m_tree;
    InodeTable m_inodes;
    std::optional<LowerLayer> m_lower;
    std::unique_ptr<StampBook> m_stamps;  // with m_lower
    bool m_lower_counts_subdirs = false;  // see counts_subdirs()

    // Guards m_lower_opened: each lower file's identity when it was last opened, to tell the
    // kernel when its cached pages went stale. Never held across I/O.
    Mutex m_lower_mutex;
    std::unordered_map<InodeNumber, FileIdentity> m_lower_opened GUARDED_BY(m_lower_mutex);

    // overlay_watch.cpp
    bool source_watched() const { return m_watch && m_watch->active(); }
    InodeNumber dir_ino(const std::string& dir) const;
    // <store>/log/<volume>.source: the source's watch, for `fbfs stat MOUNTPOINT`.
    std::filesystem::path source_status_file() const;
    // Rewrites it with `watch` as the watch's state ("" keeps the last one) and the warm-up's.
    void write_source_status(const std::string& watch);
    Mutex m_status_mutex;
    std::string m_watch_status GUARDED_BY(m_status_mutex);
    std::string m_warm_status GUARDED_BY(m_status_mutex);
    std::atomic<pid_t> m_background_caller{0};
    mutable std::atomic<bool> m_warned_unreadable{false};  // said once that the source failed
    KernelCache* m_kernel = nullptr;  // set before m_watch starts, cleared after it stops
    std::atomic<std::uint64_t> m_prefill_budget{64u << 20};  // bytes prefill() may still push
    std::unique_ptr<SourceWatch> m_watch;
    // Guards m_negatives: the (directory, name) pairs the kernel was told do not exist, while
    // the source is watched. Never held across a kernel call.
    Mutex m_negatives_mutex;
    std::set<std::pair<InodeNumber, std::string>> m_negatives GUARDED_BY(m_negatives_mutex);
};

}  // namespace fbfs
