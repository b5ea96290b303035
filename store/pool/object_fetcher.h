// ObjectFetcher: where an ObjectPool gets an object it lacks — a remote cache the store's
// metadata came from (store/remote/remote_fetcher.h). The pool owns the interface so that fs/,
// which reads objects, never needs to know where they come from.
//
// Implementations are thread-safe: FUSE worker threads fetch at the same time.
#pragma once

#include "store/base/error.h"
#include "store/base/object_id.h"

namespace fbfs {

class ObjectPool;

class ObjectFetcher {
public:
    virtual ~ObjectFetcher() = default;
    // Brings `id` into `pool`, its bytes checked against the id and published atomically (no
    // partial object ever appears). An Error naming the object and what failed otherwise.
    virtual Result<void> fetch(const ObjectId& id, const ObjectPool& pool) = 0;
};

}  // namespace fbfs
