// Moving a VolumeSnapshot (volume_snapshot.h) in and out of the store's LMDB tables: a whole
// volume read in one transaction, or put in place of a volume in one transaction.
#pragma once

#include <string_view>

#include "store/base/error.h"
#include "store/meta/lmdb.h"
#include "store/meta/store.h"
#include "store/meta/volume_snapshot.h"

namespace fbfs {

// Reads volume `name` inside `txn`; ENOENT if the store has no such volume.
Result<VolumeSnapshot> read_snapshot(const LmdbTxn& txn, const Tables& tables,
                                     std::string_view name);

// Within a write transaction: replaces volume `snapshot.name` (creating it if missing) by the
// snapshot (rows of every table, attributes included), keeping the volume's id, and adjusts object
// reference counts; objects no inode names any more are listed in `dead` for
// Store::remove_dead_objects(). The caller must hold the volume's lock and must have checked the
// snapshot.
Result<void> replace_volume(LmdbTxn& txn, const Tables& tables, const VolumeSnapshot& snapshot);

// Within a write transaction: deletes every row of table `dbi` that starts with `prefix`. In the
// inodes table, each inode that names an object gives its reference back.
Result<void> delete_rows(LmdbTxn& txn, const Tables& tables, Dbi dbi, std::string_view prefix);

}  // namespace fbfs
