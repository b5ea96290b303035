// Objects in the pool that nothing names and nothing is about to name: a `pull --eager` or an
// `unpack` killed between fetching objects and the transaction that records the volumes naming
// them leaves them behind (both clean up after a failure they live through). Nothing lists them
// (they never had a `refs` count to lose, so they are not in `dead`): `fbfs gc` finds them by
// walking the pool, and deletes those older than k_stray_age, so that it never races a pull or
// an unpack still running. Each goes only if, inside the deleting transaction, `refs` still has
// no count for it (Store::remove_if_unreferenced).
#pragma once

#include <chrono>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/base/time_ns.h"

namespace fbfs {

class Store;

inline constexpr std::chrono::hours k_stray_age{1};

// The objects of `pooled` (id → size) that no `refs` row counts and whose file was last changed
// before `now` - k_stray_age, with their sizes.
Result<std::vector<std::pair<ObjectId, std::uint64_t>>> stray_objects(
    const Store& store, const std::unordered_map<ObjectId, std::uint64_t>& pooled, TimeNs now);

}  // namespace fbfs
