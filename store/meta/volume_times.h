// When each volume was made and when it was last mounted: the `volume_times` table (volume id →
// created, last mounted), for `fbfs volume list` and for `fbfs gc`, which drops the volumes least
// recently used first.
//
// A row is written when a volume is made (a mount of a new name, an unpack, a copy) and when a
// mount of it starts and ends: never by what happens through a mount, so tracking costs a read
// or a write nothing. The table came after schema 1 without changing any encoding, so the schema
// stays 1: an older fbfs ignores the table, and a store an older fbfs wrote is brought up to date
// when this one opens it (date_untracked_volumes: a volume without a row gets one saying it was
// made then, never mounted).
#pragma once

#include <optional>
#include <string>

#include "store/base/error.h"
#include "store/base/time_ns.h"
#include "store/meta/lmdb.h"
#include "store/meta/schema.h"

namespace fbfs {

class Store;
struct Tables;

struct VolumeTimes {
    TimeNs created = 0;
    TimeNs last_mounted = 0;  // 0: never mounted

    // The last time it was made or mounted: what gc orders volumes by.
    TimeNs last_used() const { return last_mounted > created ? last_mounted : created; }

    std::string encode() const;
    static Result<VolumeTimes> decode(std::string_view bytes);
    bool operator==(const VolumeTimes&) const = default;
};

// The times of volume `id`, or nullopt if it has no row. A row that does not decode is an EIO
// Error.
Result<std::optional<VolumeTimes>> read_volume_times(const LmdbTxn& txn, const Tables& tables,
                                                     VolumeId id);

// Within a write transaction: volume `id` was made at `now` and never mounted.
Result<void> note_volume_created(LmdbTxn& txn, const Tables& tables, VolumeId id, TimeNs now);

// Within a write transaction: drops volume `id`'s row (with the volume).
Result<void> forget_volume_times(LmdbTxn& txn, const Tables& tables, VolumeId id);

// Volume `name` was mounted (or unmounted) at `now`. A volume without a row gets one made `now`.
// ENOENT if the store has no such volume.
Result<void> note_volume_mounted(Store& store, std::string_view name, TimeNs now);

// Gives every volume that has no row one made `now`, and returns how many. Cheap when every
// volume has one: one read transaction.
Result<std::size_t> date_untracked_volumes(Store& store, TimeNs now);

}  // namespace fbfs
