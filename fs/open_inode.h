// OpenInode: the in-memory state of a regular file that has open handles.
//
// A clean file is read from its object (immutable, so the kernel may keep its pages cached). The
// first change through any handle copies the content into a staging file in the store's tmp/
// (its holes stay holes; nothing is copied when the change truncates to 0); reads and writes then
// use the staging file. commit() — on every flush (close) of a writable handle, on fsync, and when
// a truncation happens with no writer open — hashes the staging file, renames it into the object
// pool and points the inode at the new object. A later write starts a new staging copy.
//
// Thread-safe. Nothing slow happens under a lock that reads wait for: m_mutex guards the state
// and is held only to read or change it, never across I/O or LMDB, so getattr, lookup and read
// of a file never wait for its commit or its staging copy. The protocol (docs/ARCHITECTURE.md,
// "Files: staging and commit"):
// - m_io orders changes of the bytes against commit. A write, truncate or fallocate holds it
//   shared while it changes the staging file, and bumps m_version; making the staging copy
//   (m_make, one copy at a time) happens under that shared hold too.
// - commit() (one at a time: m_commit) waits out changes in flight with m_io held exclusively for
//   an instant and notes m_version; hashes the staging file with no lock held, while writes go
//   on; then takes m_io exclusively again. If m_version moved, a write raced the hash and the
//   file is hashed again, writes held off (they wait, reads do not). Then, still exclusive, the
//   staging file becomes the sealed copy: no write reaches it any more, reads use it, and the
//   next write makes a new staging copy from it. The sealed file is recorded in LMDB and renamed
//   into the pool with no lock held; only then does it become the file's object. A write racing
//   the commit is therefore either in the sealed bytes or in the new staging copy, never lost:
//   the new copy stays changed and the next flush commits it.
// - Times of unsaved changes are read inside the commit's LMDB transaction and dropped from
//   memory after it only if m_version did not move meanwhile. Times set while a staging file
//   exists (defer_times) are kept only in memory: the commit that seals it reads them after
//   sealing, so it saves them.
// Lock order: InodeTable's mutex, m_commit, m_io, m_make, LMDB, m_mutex.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <shared_mutex>

#include "store/base/error.h"
#include "store/base/thread_safety.h"
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
    // Tells the pool's read observer (store/meta/object_reads.h) that the committed content is
    // opened for reading: at open, because the kernel may serve the reads from pages the
    // mount's warm-up filled without asking the daemon.
    void note_read() const EXCLUDES(m_mutex);

    // A write in progress: holds off commit() until it is destroyed.
    struct Write {
        std::shared_lock<SharedMutex> lock;
        SharedFd fd;
    };
    // Starts a write into the staging file (made on first use).
    Result<Write> begin_write();
    // Reports the end offset of what a write stored, while its Write is still held.
    void wrote(std::uint64_t end_offset);
    // Reports that a write-back of the kernel's cached pages failed (a full disk): the staging
    // file may hold a torn mix, so commit() refuses it with `error` until discard_changes().
    void write_failed(int error);
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
    // Times set by setattr while the file is open, so a commit keeps them. Call before writing
    // them to the volume, so a commit in between cannot write older ones over them.
    void set_times(std::optional<TimeNs> atime, std::optional<TimeNs> mtime, TimeNs ctime);
    // set_times() alone, writing nothing to the store, when the file has changes that a commit
    // has yet to seal (that commit then saves these times with them): returns true. Returns
    // false, changing nothing, otherwise. With the writeback cache the kernel sends such a
    // setattr (mtime and ctime) before every flush and fsync of a written file.
    bool defer_times(std::optional<TimeNs> atime, std::optional<TimeNs> mtime, TimeNs ctime);

    // Moves changed bytes into the pool and records them in `tree`; a no-op when clean.
    Result<void> commit(VolumeTree& tree);
    // commit(), then syncs the object and the metadata to disk (fsync).
    Result<void> commit_durably(VolumeTree& tree);
    // Forgets changes that could not be committed (the last handle is going): the file shows
    // its stored content again.
    void discard_changes();

private:
    // Makes the staging file unless there is one, holding the current content if `copy`, else
    // empty. Called with m_io held shared.
    Result<void> ensure_staging(bool copy) REQUIRES_SHARED(m_io) EXCLUDES(m_make, m_mutex);
    // commit()'s first half: turns the staging file into the sealed copy and returns the id and
    // size of its bytes; nullopt when there are no changes.
    Result<std::optional<PutResult>> seal_staging() REQUIRES(m_commit) EXCLUDES(m_io, m_mutex);
    // commit()'s last half, after recording the sealed copy (`recorded`) or failing to.
    void finish_commit(const std::optional<ObjectId>& object, std::uint64_t size, bool recorded,
                       std::uint64_t version) REQUIRES(m_commit) EXCLUDES(m_mutex);
    void mark_changed() REQUIRES(m_mutex);

    const InodeNumber m_ino;
    const VolumeId m_volume;
    const ObjectPool& m_pool;

    Mutex m_commit ACQUIRED_BEFORE(m_io);  // one commit() or discard_changes() at a time
    mutable SharedMutex m_io ACQUIRED_BEFORE(m_make);  // the staging file's bytes (no member)
    Mutex m_make ACQUIRED_BEFORE(m_mutex);             // one staging copy made at a time
    mutable Mutex m_mutex;                             // the state below
    unsigned m_writers GUARDED_BY(m_mutex) = 0;
    std::uint64_t m_version GUARDED_BY(m_mutex) = 0;       // moves with bytes, size or times
    std::optional<ObjectId> m_object GUARDED_BY(m_mutex);  // the committed content
    mutable SharedFd m_object_fd GUARDED_BY(m_mutex);      // opened on first read
    SharedFd m_staging_fd GUARDED_BY(m_mutex);  // while the content differs from what is sealed
    std::filesystem::path m_staging_path GUARDED_BY(m_mutex);
    SharedFd m_sealed_fd GUARDED_BY(m_mutex);  // while a commit records it: soon the object
    std::filesystem::path m_sealed_path GUARDED_BY(m_mutex);
    std::uint64_t m_size GUARDED_BY(m_mutex) = 0;
    std::optional<TimeNs> m_mtime GUARDED_BY(m_mutex);  // of unsaved changes
    std::optional<TimeNs> m_atime GUARDED_BY(m_mutex);
    std::optional<TimeNs> m_ctime GUARDED_BY(m_mutex);
    int m_write_error GUARDED_BY(m_mutex) = 0;  // of a write-back that failed since a discard
};

}  // namespace fbfs
