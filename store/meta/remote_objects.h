// The objects a store's remote cache is known to hold: the `remote_objects` table (raw object
// id → ""). The remote is the store's origin (store/remote/remote_origin.h), which a mount
// fetches missing objects from.
//
// `fbfs pull` records every object the volumes it installs name, and `fbfs push` every object of
// the volumes it uploads, once the server has them (a push records them only when it goes to the
// store's origin, or makes it the origin of a store that had none). `fbfs gc` may drop these from
// the pool, least recently read first (object_reads.h), after asking the server that it still
// has them, because a mount fetches them again on first read. A row goes when its object leaves
// the store, and all of them when the origin changes. Like object_reads, the table came after
// schema 1 without changing an encoding.
#pragma once

#include <span>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/meta/lmdb.h"

namespace fbfs {

class Store;
struct Tables;

// Within a write transaction: the remote holds `id`.
Result<void> note_remote_object(LmdbTxn& txn, const Tables& tables, const ObjectId& id);
// The remote holds each of `ids`: one write transaction.
Result<void> note_remote_objects(Store& store, std::span<const ObjectId> ids);
// Within a write transaction: the remote lacks `id` after all (a server evicted it).
Result<void> forget_remote_object(LmdbTxn& txn, const Tables& tables, const ObjectId& id);
// Within a write transaction: forget every row (the store's origin changed).
Result<void> forget_remote_objects(LmdbTxn& txn, const Tables& tables);
// Whether the remote is known to hold `id`.
Result<bool> remote_holds(const LmdbTxn& txn, const Tables& tables, const ObjectId& id);

}  // namespace fbfs
