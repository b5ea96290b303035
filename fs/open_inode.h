// OpenInode: the in-memory state of a regular file that has open handles.
//
// A clean file is read from its object (immutable, so the kernel may keep its pages cached). The
// first change through any handle copies the content into a staging file in the store's tmp/
// (its holes stay holes; nothing is copied when the change truncates to 0); reads and writes then
// use the staging file. commit() — on every flush (close) of a writable handle, on fsync, and when
// a truncation happens with no writer open — hashes the staging file, renames it into the object
// pool and points the inode at the new object. A later write starts a new staging copy.
//
// Thread-safe. m_mutex guards the members. m_io orders I/O against commit: a write holds it shared
// for the pwrite/splice into the staging file, commit() holds it exclusively, so no byte reaches a
// file after it was hashed. Lock order: InodeTable's mutex, m_io, m_mutex, then LMDB.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>

#include "store/base/error.h"
#include "store/base/unique_fd.h"
#include "store/meta/schema.h"
#include "store/meta/volume_tree.h"
#include "store/pool/object_pool.h"

namespace fbfs {

using SharedFd = std::shared_ptr<const UniqueFd>;

class OpenInode {
public:
    // `record` is the inode as stored when its first handle opened.
    OpenInode(InodeNumber ino, VolumeId volume, const ObjectPool& pool, const InodeRecord& record)
        : m_ino(ino),
          m_volume(volume),
          m_pool(pool),
          m_object(record.object),
          m_size(record.size) {}

    // Registers a handle that may write; `truncate` empties the file (O_TRUNC).
    Result<void> open_writer(bool truncate);
    void release_writer();
    bool has_writers() const;

    // The fd to read from; nullptr when the file is empty.
    Result<SharedFd> data_fd() const;

    // A write in progress: holds off commit() until it is destroyed.
    struct Write {
        std::shared_lock<std::shared_mutex> lock;
        SharedFd fd;
    };
    // Starts a write into the staging file (made on first use).
    Result<Write> begin_write();
    // Reports the end offset of what a write stored, while its Write is still held.
    void wrote(std::uint64_t end_offset);
    Result<void> truncate(std::uint64_t size);
    // fallocate(2) on the staging file with `mode` (0, FALLOC_FL_KEEP_SIZE, PUNCH_HOLE with
    // KEEP_SIZE, ZERO_RANGE with or without KEEP_SIZE), so the file's bytes, size and holes are
    // what the store's filesystem makes of them. Fails with that filesystem's errno; a ZERO_RANGE
    // it lacks is done as a punched hole, then an allocation.
    Result<void> allocate(int mode, off_t offset, off_t length);
    // lseek(2) with SEEK_DATA or SEEK_HOLE over the current content; ENXIO at or past its end.
    Result<off_t> seek(off_t offset, int whence) const;
    // The 512-byte blocks the current content takes on the store's disk (holes take none), or
    // nullopt when the file is empty or its fd cannot say.
    std::optional<std::uint64_t> allocated_blocks() const;

    // Applies what is only in memory (size and times of unsaved changes) to `record`.
    void overlay(InodeRecord& record) const;
    // Times set by setattr while the file is open, so a commit keeps them.
    void set_times(std::optional<TimeNs> atime, std::optional<TimeNs> mtime, TimeNs ctime);

    // Moves changed bytes into the pool and records them in `tree`; a no-op when clean.
    Result<void> commit(VolumeTree& tree);
    // commit(), then syncs the object and the metadata to disk (fsync).
    Result<void> commit_durably(VolumeTree& tree);
    // Forgets changes that could not be committed (the last handle is going): the file shows
    // its stored content again.
    void discard_changes();

private:
    Result<void> ensure_staging();  // m_mutex held
    void mark_changed();            // m_mutex held
    void drop_staging();            // m_mutex held

    const InodeNumber m_ino;
    const VolumeId m_volume;
    const ObjectPool& m_pool;

    mutable std::shared_mutex m_io;
    mutable std::mutex m_mutex;
    unsigned m_writers = 0;
    std::optional<ObjectId> m_object;  // the committed content
    mutable SharedFd m_object_fd;      // opened on first read
    SharedFd m_staging_fd;             // present while the content differs from m_object
    std::filesystem::path m_staging_path;
    std::uint64_t m_size = 0;
    std::optional<TimeNs> m_mtime;  // of unsaved changes
    std::optional<TimeNs> m_atime;
    std::optional<TimeNs> m_ctime;
};

}  // namespace fbfs
