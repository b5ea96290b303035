// Keeping a store within a size: `fbfs gc` and `fbfs mount --max-store-size`.
//
// gc drops whole volumes, least recently used first (volume_times.h: the last time each was
// mounted, or made if never mounted), passing over the volumes it is told to keep and any a
// mount, pack or unpack is using, until the store fits its bound and no volume left is older than
// the age given. The size it keeps is what `fbfs stat` calls stored: the bytes of the pool's
// objects (the metadata, meta/data.mdb, is not counted: LMDB reuses its pages but never
// shrinks its file). The volumes go in one transaction (volume_removal.h): a crash drops all of
// them or none.
#pragma once

#include <cstdint>
#include <optional>
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
};

struct GcVolume {
    std::string name;
    TimeNs last_used = 0;
    Freed freed;  // objects only it named among those left when it went
};

struct GcReport {
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
