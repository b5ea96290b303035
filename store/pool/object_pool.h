// ObjectPool: the content-addressed pool of a store, one read-only file per distinct content.
//
// Layout under the store root:
//   objects/ab/cdef…   the object whose SHA-256 hex is "abcdef…" (mode 0444)
//   tmp/               files being written; an object appears under its id only by an atomic
//                      rename after its bytes were hashed, so a reader never sees a partial object.
//
// Puts stream (no whole-file buffering). Putting bytes already present drops the new copy and
// reports `deduped`. Concurrent puts of the same content, from threads or processes, end with one
// intact object. All methods are thread-safe; besides the files the pool keeps only the spares
// (keep_spares()) and what each object takes on disk (allocated_blocks()), shared by its copies.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/base/unique_fd.h"
#include "store/pool/object_blocks.h"
#include "store/pool/object_fetcher.h"
#include "store/pool/read_observer.h"
#include "store/pool/spare_files.h"

namespace fbfs {

struct PutResult {
    ObjectId id;
    std::uint64_t size = 0;
    bool deduped = false;  // the object was already in the pool; nothing new was stored
};

// A file of the pool's tmp/ that a caller fills and later publishes (see copy_to_temp()).
struct TempCopy {
    UniqueFd fd;  // open for reading and writing
    std::filesystem::path path;
    std::uint64_t size = 0;  // bytes copied into it
};

class ObjectPool {
public:
    // Opens the pool under `root`, creating objects/ and tmp/ (0700) if missing.
    // Fails if `root` does not exist or they cannot be created.
    static Result<ObjectPool> open(const std::filesystem::path& root);

    Result<PutResult> put_bytes(std::span<const std::byte> bytes) const;
    Result<PutResult> put_bytes(std::string_view bytes) const;
    // Reads `fd` from its current offset to its end (all of it for a freshly opened file); the
    // offset afterwards is unspecified. A regular file is hashed while the kernel copies it (a
    // large one keeps its holes); one that changes meanwhile fails with EAGAIN. On any error no
    // object and no temp file remain.
    Result<PutResult> put_fd(int fd) const;
    Result<PutResult> put_path(const std::filesystem::path& path) const;
    // Moves `file`, a regular file inside tmp_dir() that nobody writes any more, into the pool
    // without copying its bytes: seal() then publish(). On success `file` is gone; on failure
    // it is left in place for the caller to deal with.
    Result<PutResult> adopt(const std::filesystem::path& file) const;
    // Hashes `file` (as adopt()) and makes it read-only, ready for publish(). `deduped` is false.
    Result<PutResult> seal(const std::filesystem::path& file) const;
    // Renames a sealed `file` into the pool as `id`. If the object is there already, `file` is
    // removed and `deduped` is true.
    Result<PutResult> publish(const std::filesystem::path& file, const ObjectId& id,
                              std::uint64_t size) const;

    // Makes a new file in tmp_dir() named `prefix` and a unique suffix (or takes a spare, see
    // keep_spares()), holding the bytes of `from` from offset 0 to its end (nothing if `from` is
    // -1), copied inside the kernel where the two filesystems allow it and through a buffer where
    // they do not. Only data is copied: the holes of `from` (SEEK_HOLE) stay holes. On failure no
    // file remains.
    Result<TempCopy> copy_to_temp(int from, std::string_view prefix) const;
    // From now on remove() keeps the files of up to `count` removed objects of at most 64 KiB in
    // tmp_dir() as spares named `prefix` and a number, and copy_to_temp() empties and fills a
    // spare instead of making a file: a rewritten file then costs no inode allocated and none
    // freed (ext4 without a journal scans past every inode freed in the last minutes for each
    // one it allocates). The spares left are deleted when the last copy of this pool goes; a
    // killed process leaves them for whoever removes stale files of that prefix.
    void keep_spares(std::string prefix, std::size_t count) const;
    // Hashes `fd` from offset 0 to its end, storing nothing: what its id would be.
    static Result<PutResult> hash_fd(int fd);

    bool contains(const ObjectId& id) const;
    // Opens an object O_RDONLY. ENOENT if it is not in the pool.
    Result<UniqueFd> open_object(const ObjectId& id) const;
    // open_object(), but an object the pool lacks is first fetched through the fetcher, if one
    // is set (a store pulled lazily from a remote cache). A failed fetch is logged and is EIO.
    Result<UniqueFd> open_or_fetch(const ObjectId& id) const;
    // Tells the read observer, if one is set, that a mount opened `id` for reading.
    void note_read(const ObjectId& id) const {
        if (m_reads) {
            m_reads->object_read(id);
        }
    }
    // Where open_or_fetch() gets missing objects. Set before the pool is shared between threads.
    void set_fetcher(std::shared_ptr<ObjectFetcher> fetcher) { m_fetcher = std::move(fetcher); }
    // Who note_read() tells. Set before the pool is shared.
    void set_read_observer(std::shared_ptr<ObjectReadObserver> observer) {
        m_reads = std::move(observer);
    }
    Result<std::uint64_t> size(const ObjectId& id) const;
    // The 512-byte blocks the object takes on disk (st_blocks: holes take none), stat'ed once and
    // then remembered (ObjectBlocks), so a caller may ask on every getattr. nullopt if the pool
    // lacks the object or it cannot be stat'ed.
    std::optional<std::uint64_t> allocated_blocks(const ObjectId& id) const;
    // Removes an object (keeping its file as a spare, see keep_spares()); removing a missing
    // object is not an error.
    Result<void> remove(const ObjectId& id) const;
    // Re-hashes an object: true if its bytes match its id, false if not; an Error if unreadable.
    Result<bool> verify(const ObjectId& id) const;
    // Calls `visit` for every object file in the pool (id, size). Stops at the first error.
    // Files under objects/ whose names are not ids are skipped.
    Result<void> for_each(const std::function<void(const ObjectId&, std::uint64_t)>& visit) const;

    std::filesystem::path object_path(const ObjectId& id) const;
    const std::filesystem::path& tmp_dir() const { return m_tmp; }
    const std::filesystem::path& root() const { return m_root; }

private:
    ObjectPool(std::filesystem::path root, std::filesystem::path objects,
               std::filesystem::path tmp);

    std::filesystem::path m_root;
    std::filesystem::path m_objects;
    std::filesystem::path m_tmp;
    std::shared_ptr<ObjectFetcher> m_fetcher;     // none unless set_fetcher()
    std::shared_ptr<ObjectReadObserver> m_reads;  // none unless set_read_observer()
    std::shared_ptr<SpareFiles> m_spares;         // shared by copies of this pool
    std::shared_ptr<ObjectBlocks> m_blocks;       // likewise
};

}  // namespace fbfs
