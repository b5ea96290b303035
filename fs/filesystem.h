// Filesystem: the POSIX operations a mount serves, over one VolumeTree, in fbfs's own terms.
//
// Every operation returns a Result whose Error code is the errno to reply with; fuse_server.cpp
// is the one place that turns these into FUSE replies. Permission checks are the kernel's
// (default_permissions); this class keeps ownership, times, link counts and the kernel's lookup
// counts right.
//
// Thread-safe: called from every FUSE worker thread at once.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fs/inode_table.h"
#include "fs/open_inode.h"
#include "store/error.h"
#include "store/store.h"
#include "store/volume_tree.h"

namespace fbfs {

// Who asks: the uid, gid and supplementary-group-free identity of the calling process.
struct Caller {
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
};

// An open file: one per open(2) the kernel passed on.
struct FileHandle {
    InodeNumber ino = 0;
    bool writable = false;
    std::shared_ptr<OpenInode> inode;
};

// A directory listing taken at opendir, so readdir offsets stay valid while entries change.
struct DirHandle {
    struct Entry {
        std::string name;
        InodeNumber ino = 0;
        std::uint8_t type = 0;
    };
    std::vector<Entry> entries;  // "." and ".." first
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
};

class Filesystem {
public:
    explicit Filesystem(VolumeTree tree);

    VolumeTree& tree() { return m_tree; }
    const ObjectPool& pool() const { return m_tree.store().pool(); }

    // Entry operations: each successful one counts one kernel lookup of the inode it returns.
    Result<struct stat> lookup(InodeNumber parent, std::string_view name);
    void forget(InodeNumber ino, std::uint64_t count);
    // Counts a kernel lookup the caller handed out itself (a readdirplus entry).
    void remember(InodeNumber ino) { m_inodes.remember(ino); }
    Result<struct stat> mknod(InodeNumber parent, std::string_view name, std::uint32_t mode,
                              std::uint64_t rdev, const Caller& caller);
    Result<struct stat> mkdir(InodeNumber parent, std::string_view name, std::uint32_t mode,
                              const Caller& caller);
    Result<struct stat> symlink(std::string_view target, InodeNumber parent,
                                std::string_view name, const Caller& caller);
    Result<struct stat> link(InodeNumber ino, InodeNumber parent, std::string_view name);

    Result<struct stat> getattr(InodeNumber ino);
    Result<struct stat> setattr(InodeNumber ino, const AttrChange& change, const Caller& caller);
    Result<std::string> readlink(InodeNumber ino);
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
    Result<Created> create(InodeNumber parent, std::string_view name, std::uint32_t mode,
                           int flags, const Caller& caller);
    Result<void> flush(FileHandle& handle);
    Result<void> fsync(FileHandle& handle);
    void release(std::unique_ptr<FileHandle> handle);
    Result<void> fallocate(FileHandle& handle, int mode, off_t offset, off_t length);

    Result<std::unique_ptr<DirHandle>> opendir(InodeNumber ino);

    Result<struct statvfs> statfs() const;

private:
    Result<InodeRecord> record(InodeNumber ino) const;
    struct stat to_stat(InodeNumber ino, const InodeRecord& record) const;
    Result<struct stat> make_node(InodeNumber parent, std::string_view name, InodeRecord record,
                                  const Caller& caller);
    // Deletes an inode with no links once neither the kernel nor a handle holds it.
    Result<void> drop_if_unused(InodeNumber ino);
    // Deletes an inode with no links, and the objects nothing names any more.
    Result<void> drop(InodeNumber ino);
    std::shared_ptr<OpenInode> open_inode(InodeNumber ino, const InodeRecord& record);

    VolumeTree m_tree;
    InodeTable m_inodes;
};

}  // namespace fbfs
