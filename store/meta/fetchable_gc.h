// The first thing `fbfs gc --max-size` gives back: pooled objects the remote holds
// (remote_objects.h), least recently read first (object_reads.h), because a mount fetches them
// again on first read and so nothing is lost. Only then does gc drop whole volumes (volume_gc.h).
//
// An object goes only if the server still has it (gc asks it in one parallel batch first: a
// server that evicted an object keeps the local copy), and never while a mount other than the
// caller's serves a volume naming it (a mount that started before the store had a remote has
// nothing to fetch from). Each is deleted inside a write transaction, which no transaction naming
// an object can overlap; one that makes an inode name an object missing from the pool puts the
// file back (VolumeTree::set_content), so a dropped object never leaves a new name without bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/base/time_ns.h"
#include "store/meta/lmdb.h"
#include "store/meta/volume_usage.h"

namespace fbfs {

class Store;
struct Tables;

struct Fetchable {
    ObjectId id;
    std::uint64_t size = 0;
    TimeNs last_read = 0;  // 0: never read through a mount
};

// The pooled objects (`pooled`: id → size) the remote holds and `in_use` does not claim, least
// recently read first.
Result<std::vector<Fetchable>> fetchable_objects(
    const LmdbTxn& txn, const Tables& tables,
    const std::unordered_map<ObjectId, std::uint64_t>& pooled,
    const std::function<bool(const ObjectId&)>& in_use);

// Deletes each of `objects` still listed as the remote's and still pooled, in transactions of
// 1024 objects; returns what went.
Result<Freed> drop_fetchable_objects(Store& store, std::span<const Fetchable> objects);

}  // namespace fbfs
