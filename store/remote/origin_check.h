// What `fbfs gc` asks before it drops pooled objects the remote holds (store/meta/fetchable_gc.h):
// which of them the store's origin (remote_origin.h) no longer has, in one parallel batch of
// HEADs. Shared by `fbfs gc` and `fbfs mount --max-store-size`.
#pragma once

#include <span>
#include <vector>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/meta/store.h"
#include "store/remote/transport.h"

namespace fbfs {

using RemoteMissingCheck =
    std::function<Result<std::vector<ObjectId>>(std::span<const ObjectId>)>;

// The check against `store`'s origin, or an empty function if the store has none (then gc drops
// no pooled object). No request is made until it is called.
Result<RemoteMissingCheck> origin_missing_check(const Store& store, RemoteOptions options);

}  // namespace fbfs
