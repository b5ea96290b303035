// Keeping a store within a size: `fbfs gc` and `fbfs mount --max-store-size`.
//
// gc first deletes objects nothing names that a killed pull or unpack left (stray_objects.h).
// Over --max-size, it then drops pooled objects the remote holds, least recently read first
// (fetchable_gc.h): nothing is lost, a mount fetches them again. Then it drops whole volumes, least recently used first (volume_times.h: the last time each was
// mounted, or made if never mounted), passing over the volumes it is told to keep and any a
// mount, pack or unpack is using, until the store fits its bound and no volume left is older than
// the age given. The size it keeps is what `fbfs stat` calls stored: the bytes of the pool's
// objects (the metadata, meta/data.mdb, is not counted: LMDB reuses its pages but never
// shrinks its file). The volumes go in one transaction (volume_removal.h): a crash drops all of
// them or none.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <set>
#include <string>
#include <vector>

#include "store/base/error.h"
#include "store/base/time_ns.h"
#include "store/meta/store.h"
#include "store/meta/volume_usage.h"

namespace fbfs {

struct GcPolicy {
    std::optional<std::uint64_t> max_bytes;  // the pool's bytes to stay within
    std::optional<TimeNs> older_than;        // drop every volume unused for this long
    std::set<std::string> keep;              // never dropped
    bool dry_run = false;                    // say what would go, change nothing
    // Which of these objects the store's remote lacks (HttpCas::missing), asked before any
    // pooled object is dropped. Unset: gc drops no pooled object, only volumes. A dry run never
    // asks, and counts every object the store lists as the remote's.
    std::function<Result<std::vector<ObjectId>>(std::span<const ObjectId>)> remote_missing;
    // At most this many pooled objects asked about and dropped in one gc (each is a HEAD). If
    // more would have to go, no volume is dropped this time: fetchable objects go first.
    std::optional<std::size_t> max_fetchable;
};

struct GcVolume {
    std::string name;
    TimeNs last_used = 0;
    Freed freed;  // objects only it named among those left when it went
};

struct GcReport {
    Freed strays;                    // objects nothing named, left by a killed pull or unpack
    Freed fetchable;                 // pooled objects dropped because the remote holds them
    std::uint64_t remote_lacked = 0;  // objects listed as the remote's that it no longer had
    std::string remote_error;        // why the remote could not be asked (then no object went)
    bool fetchable_capped = false;   // policy.max_fetchable stopped the objects phase
    std::vector<GcVolume> dropped;
    std::vector<std::string> busy;   // volumes it would have dropped but that were in use
    std::uint64_t bytes_before = 0;  // the pool's bytes before and after
    std::uint64_t bytes_after = 0;
    std::uint64_t objects_before = 0;
};

// Applies `policy` at time `now`. Fails, changing nothing, if the metadata or the pool cannot be
// read; a volume in use is passed over (listed in `busy`), never an error.
Result<GcReport> collect_garbage(Store& store, const GcPolicy& policy, TimeNs now);

}  // namespace fbfs
