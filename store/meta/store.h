// Store: one fbfs store directory — the object pool shared by all its volumes and the LMDB
// environment holding every volume's metadata.
//
//   <root>/objects/   the object pool (see object_pool.h)
//   <root>/tmp/       temp and staging files
//   <root>/meta/      the LMDB environment (tables in schema.h and docs/ARCHITECTURE.md)
//   <root>/locks/     one lock file per volume being served (see volume_lock.h)
//
// Nothing in a store depends on where it is, where it is mounted or on $HOME: a store can be moved.
// Store is thread-safe; one Store per process and root.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "store/base/error.h"
#include "store/meta/lmdb.h"
#include "store/meta/schema.h"
#include "store/pool/object_pool.h"

namespace fbfs {

struct Tables {
    Dbi meta = 0;     // "schema" -> u32 version
    Dbi volumes = 0;  // volume name -> VolumeRecord
    Dbi inodes = 0;   // volume id + inode -> InodeRecord
    Dbi dirents = 0;  // volume id + parent inode + name -> DirentValue
    Dbi stamps = 0;   // volume id + relative path -> LowerStamp
    Dbi refs = 0;     // raw object id -> u64 count of inodes whose content it is
    Dbi orphans = 0;  // volume id + inode -> "" for inodes with nlink 0 kept while open
    Dbi dead = 0;     // raw object id -> "" for objects whose last reference went
    Dbi xattrs = 0;   // volume id + inode + attribute name -> its value
    Dbi volume_times = 0;  // volume id -> VolumeTimes (volume_times.h)
    Dbi object_reads = 0;  // raw object id -> u64 time it was last read (object_reads.h)
    Dbi remote_objects = 0;  // raw object id -> "" for objects the remote holds (remote_objects.h)
};

struct VolumeInfo {
    std::string name;
    VolumeRecord record;
};

// Within a write transaction: counts one inode more (`delta` > 0) or less for object `id`. An
// object no inode names any more is listed in `dead` for Store::remove_dead_objects(); one named
// again leaves that list. A count that does not decode, or one that would go below zero, is
// corruption: an EIO Error naming the object, and nothing is changed.
Result<void> adjust_object_ref(LmdbTxn& txn, const Tables& tables, const ObjectId& id, int delta);

// The id a new volume takes: one more than the largest in use. A volume record that does not
// decode hides an id in use, so it is an EIO Error naming the volume.
Result<VolumeId> unused_volume_id(const LmdbTxn& txn, const Tables& tables);

class Store {
public:
    enum class Mode { open_existing, create_if_missing };

    // Opens the store at `root`. With open_existing, a missing directory, a file, a directory
    // that is not a store, or one this user cannot read and write is an Error that says so and
    // nothing is created. A store written by a newer schema is refused.
    static Result<std::unique_ptr<Store>> open(const std::filesystem::path& root, Mode mode);

    // $FBFS_STORE, else ${XDG_CACHE_HOME:-$HOME/.cache}/fbfs.
    static std::filesystem::path default_root();

    const std::filesystem::path& root() const { return m_root; }
    const ObjectPool& pool() const { return m_pool; }
    // Where the pool gets objects it lacks (ObjectPool::open_or_fetch); set before serving.
    void set_object_fetcher(std::shared_ptr<ObjectFetcher> fetcher) {
        m_pool.set_fetcher(std::move(fetcher));
    }
    // Who is told of each object a mount opens to read (object_reads.h); set before serving.
    void set_read_observer(std::shared_ptr<ObjectReadObserver> observer) {
        m_pool.set_read_observer(std::move(observer));
    }
    LmdbEnv& env() { return m_env; }
    const LmdbEnv& env() const { return m_env; }
    const Tables& tables() const { return m_tables; }

    // Every volume, by name.
    Result<std::vector<VolumeInfo>> volumes() const;

    // Deletes the objects that no inode of any volume names any more (listed in `dead`), and
    // returns how many. The unlink happens inside the write transaction that checks `refs`, and
    // every transaction that makes an inode name an object checks that its file exists (see
    // VolumeTree::set_content), so an object is never deleted while something names it. Cheap
    // when nothing is dead: one read transaction. Many go in transactions of 1024 objects each.
    Result<std::size_t> remove_dead_objects();
    // Deletes `id` from the pool if no inode names it (same transaction rule).
    Result<void> remove_if_unreferenced(const ObjectId& id);
    // The same for each of `ids`, in transactions of 1024; returns how many were deleted.
    Result<std::size_t> remove_if_unreferenced(std::span<const ObjectId> ids);
    // Within a write transaction: deletes object `id`'s file, which inodes still name, because
    // the remote holds it (remote_objects.h) and a mount fetches it again. Every transaction that
    // makes an inode name an object puts the file back if it is missing (VolumeTree::set_content).
    Result<void> drop_fetchable(LmdbTxn& txn, const ObjectId& id);

private:
    Store(std::filesystem::path root, ObjectPool pool, LmdbEnv env)
        : m_root(std::move(root)), m_pool(std::move(pool)), m_env(std::move(env)) {}
    Result<void> open_tables();
    // In a write txn: unlinks the object under raw id `key` if `refs` has no count for it, and
    // takes it off the `dead` list. Returns whether it was unlinked.
    Result<bool> remove_unreferenced(LmdbTxn& txn, std::string_view key);
    Result<void> check_schema();

    std::filesystem::path m_root;
    ObjectPool m_pool;
    LmdbEnv m_env;
    Tables m_tables;
};

}  // namespace fbfs
