// VolumeTree: one named volume of a store as a tree of inodes and directory entries in LMDB.
//
// Each method is one short LMDB transaction that keeps the tree consistent: link counts, parent
// times, object reference counts and POSIX rules for names (EEXIST, ENOTEMPTY, EISDIR, ENOTDIR).
// Callers (the FUSE server) check permissions; the tree enforces structure. Inode numbers are
// allocated here, never reused, and persisted, so they stay the same across mounts.
//
// An inode whose last link goes while the file is still open is kept as an orphan (nlink 0,
// listed in the `orphans` table) until drop() is called on last close; orphans left by a killed
// daemon are dropped by drop_orphans() at the next mount.
//
// Thread-safe: every method may be called from any FUSE worker thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/base/error.h"
#include "store/base/thread_safety.h"
#include "store/meta/schema.h"
#include "store/meta/store.h"
#include "store/meta/xattr.h"

namespace fbfs {

struct NamedEntry {
    std::string name;
    DirentValue value;
};

struct NewInode {
    InodeNumber ino = 0;
    InodeRecord record;
};

// What a remove or an overwriting rename did to the inode that lost a name.
struct Unlinked {
    InodeNumber ino = 0;
    InodeRecord record;  // after the change: nlink 0 means it is now an orphan or gone
};

class VolumeTree {
public:
    // Opens volume `name` of `store`, creating it with an empty root directory (mode 0755, owned
    // by `uid`:`gid`) if it does not exist yet.
    static Result<VolumeTree> open(Store& store, std::string_view name, std::uint32_t uid,
                                   std::uint32_t gid);

    VolumeTree(VolumeTree&& other) noexcept;
    VolumeTree& operator=(VolumeTree&&) = delete;
    VolumeTree(const VolumeTree&) = delete;
    VolumeTree& operator=(const VolumeTree&) = delete;

    VolumeId id() const { return m_id; }
    const std::string& name() const { return m_name; }
    Store& store() const { return *m_store; }

    // Reads. An absent inode or entry is an empty optional.
    Result<std::optional<InodeRecord>> get(InodeNumber ino) const;
    Result<std::optional<DirentValue>> lookup(InodeNumber parent, std::string_view name) const;
    // All entries of a directory, whiteouts included, in name order.
    Result<std::vector<NamedEntry>> list(InodeNumber dir) const;

    // How create() makes an inode, beyond the defaults.
    struct CreateOptions {
        // The number to give it instead of a new one (an overlay copy-up keeps the number the
        // kernel already knows the file by); EEXIST if that number is taken.
        std::optional<InodeNumber> ino;
        // The sealed file holding `record.object`'s bytes, published inside the transaction as
        // set_content() does.
        std::filesystem::path sealed;
        // Whether the parent's mtime and ctime change (not for a copy-up, which shows nothing new).
        bool touch_parent = true;
        // Extended attributes it starts with (a copy-up carries the lower file's). Each name must
        // be one a volume stores and together they must fit (store/meta/xattr.h): else EINVAL/ENOSPC.
        std::vector<Xattr> xattrs;
    };
    // Creates `name` in directory `parent` with `record` (its nlink is set here). A whiteout of
    // that name is replaced; any other entry is EEXIST.
    Result<NewInode> create(InodeNumber parent, std::string_view name, InodeRecord record,
                            const CreateOptions& options);
    Result<NewInode> create(InodeNumber parent, std::string_view name, InodeRecord record) {
        return create(parent, name, std::move(record), CreateOptions{});
    }
    // Adds a hard link `parent`/`name` to the non-directory `ino`.
    Result<InodeRecord> link(InodeNumber ino, InodeNumber parent, std::string_view name);
    // Removes `parent`/`name`: a directory only if `dir` (it must be empty: ENOTEMPTY), a
    // non-directory only if not (EISDIR / ENOTDIR). With `leave_whiteout`, a whiteout takes its
    // place (for the overlay). An inode left with no links and `keep_open` becomes an orphan;
    // without `keep_open` it is deleted.
    Result<Unlinked> remove(InodeNumber parent, std::string_view name, bool dir,
                            bool leave_whiteout, bool keep_open);
    // Puts a whiteout at `parent`/`name`, which must have no entry or a whiteout.
    Result<void> add_whiteout(InodeNumber parent, std::string_view name);
    // What an overlay's rename changes besides the entries, in the same transaction.
    struct RenameOverlay {
        bool whiteout_source = false;  // a whiteout takes the old name (a lower entry is there)
        bool opaque = false;           // the moved directory no longer merges with the lower one
    };
    // rename(2) with RENAME_NOREPLACE / RENAME_EXCHANGE flags. Returns the inode that was
    // overwritten, if any (as remove() would: orphaned if `keep_open(ino)` says it is open).
    // Renaming a name onto another name of the same inode changes nothing, `overlay` included.
    Result<std::optional<Unlinked>> rename(InodeNumber parent, std::string_view name,
                                           InodeNumber new_parent, std::string_view new_name,
                                           unsigned flags,
                                           const std::function<bool(InodeNumber)>& keep_open,
                                           const RenameOverlay& overlay);
    Result<std::optional<Unlinked>> rename(InodeNumber parent, std::string_view name,
                                           InodeNumber new_parent, std::string_view new_name,
                                           unsigned flags,
                                           const std::function<bool(InodeNumber)>& keep_open) {
        return rename(parent, name, new_parent, new_name, flags, keep_open, RenameOverlay{});
    }
    // Reads, changes and writes one inode in one transaction; object references follow a change
    // of `object`. `change` may fail to abort. Returns the record as written.
    Result<InodeRecord> update(InodeNumber ino,
                               const std::function<Result<void>(InodeRecord&)>& change);
    // Gives the regular file `ino` new content — the object `id` of `size` bytes, whose bytes are
    // `sealed` (see ObjectPool::seal), or none for an empty file — and applies `change` (times),
    // in one transaction. If the pool lacks the object, `sealed` is published inside that
    // transaction, so the object exists before any inode names it and a concurrent
    // Store::remove_dead_objects() can never delete it in between. On success `sealed` is gone;
    // on failure it is left for another try unless it had been published.
    Result<InodeRecord> set_content(InodeNumber ino, const std::optional<ObjectId>& id,
                                    std::uint64_t size, const std::filesystem::path& sealed,
                                    const std::function<void(InodeRecord&)>& change);
    // Extended attributes (store/meta/xattr.h), shared by every name of the inode and deleted with
    // it. A missing inode is ENOENT. The value of `name`, or an empty optional if it has none.
    Result<std::optional<std::string>> xattr(InodeNumber ino, std::string_view name) const;
    // Every attribute of `ino`, in name order.
    Result<std::vector<Xattr>> xattrs(InodeNumber ino) const;
    // Sets `name` to `value` and moves the inode's ctime, in one transaction. EEXIST or ENODATA
    // as `mode` asks; ENOSPC if the inode's attributes would no longer fit; EINVAL for a name a
    // volume does not store. Returns the record as written.
    Result<InodeRecord> set_xattr(InodeNumber ino, std::string_view name, std::string_view value,
                                  XattrMode mode);
    // Removes `name` (ENODATA if the inode has no such attribute) and moves the inode's ctime.
    Result<InodeRecord> remove_xattr(InodeNumber ino, std::string_view name);

    // The stamp recorded for the lower file at `relative_path`, if any.
    Result<std::optional<LowerStamp>> stamp(std::string_view relative_path) const;
    Result<void> put_stamp(std::string_view relative_path, const LowerStamp& stamp);

    // Deletes an orphan (nlink 0) when its last user is gone. Not an error if it is gone already.
    Result<void> drop(InodeNumber ino);
    // Deletes every orphan of this volume (left by a daemon that was killed). Returns how many.
    Result<std::size_t> drop_orphans();

private:
    VolumeTree(Store& store, std::string name, VolumeId id)
        : m_store(&store), m_name(std::move(name)), m_id(id) {}
    Result<InodeNumber> allocate_inode();

    Store* m_store;
    std::string m_name;
    VolumeId m_id;

    // Guards m_next_inode and m_inode_limit: a range of numbers reserved in the volume record, so
    // creating a file does not rewrite the counter. Lock order: before any LMDB transaction.
    Mutex m_alloc_mutex;
    InodeNumber m_next_inode GUARDED_BY(m_alloc_mutex) = 0;
    InodeNumber m_inode_limit GUARDED_BY(m_alloc_mutex) = 0;
};

}  // namespace fbfs
