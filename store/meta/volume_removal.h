// Removing whole volumes from a store, and copying one: `fbfs volume rm`, `fbfs volume cp` and
// what `fbfs gc` drops.
//
// Each is one LMDB write transaction, so a crash leaves the store as it was or as it is after:
// a removal deletes every row of its volumes and gives back their objects' references; the
// objects whose count went to zero are listed in `dead` in that transaction and deleted after it
// by Store::remove_dead_objects(), the removal the daemons use, which unlinks an object only in a
// transaction that finds no reference to it. A crash after the commit leaves them listed for the
// next removal or mount to delete. The volumes concerned are locked (volume_lock.h) while it
// runs, so no mount, pack or unpack uses them meanwhile.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "store/base/error.h"
#include "store/meta/lmdb.h"
#include "store/meta/store.h"
#include "store/meta/volume_lock.h"
#include "store/meta/volume_usage.h"

namespace fbfs {

// Within a write transaction: deletes every row of volume `name`: inodes (giving back their
// references), entries, stamps, orphans, attributes, times and its record. ENOENT if the store
// has no such volume.
Result<void> delete_volume(LmdbTxn& txn, const Tables& tables, std::string_view name);

// What a removal gave back (or, dry, would give back): each volume's share in the order the
// volumes went (objects two of them shared count for the later), and the sum.
struct Removal {
    std::vector<std::pair<std::string, Freed>> volumes;
    Freed total;
};

// Removes `names` (duplicates count once), all or none. Refuses, changing nothing: a name the
// store has not (ENOENT), a volume that a mount, pack or unpack is using (EBUSY, naming its pid).
// With `dry_run`, only says what would be freed.
Result<Removal> remove_volumes(Store& store, std::vector<std::string> names, bool dry_run);

// Makes volume `to` a copy of volume `from`: its metadata (inodes, entries, stamps, attributes)
// in one write transaction, the objects shared (their counts go up), in time proportional to the
// metadata. `from` may be mounted: the copy holds what its last committed transaction held (a
// file open for writing, as of its last close or fsync). Refuses, changing nothing: an existing
// `to` (EEXIST), a missing `from` (ENOENT), a `to` being mounted (EBUSY). Returns the number of
// inodes copied.
Result<std::size_t> copy_volume(Store& store, const std::string& from, const std::string& to);

}  // namespace fbfs
