// ObjectReadObserver: told of each object a mount opens to read (ObjectPool::note_read), so
// the store can keep when each was last read (store/meta/object_reads.h) without the pool knowing
// about the metadata.
//
// Implementations are thread-safe and cheap: FUSE worker threads call them on the open path.
#pragma once

#include "store/base/object_id.h"

namespace fbfs {

class ObjectReadObserver {
public:
    virtual ~ObjectReadObserver() = default;
    virtual void object_read(const ObjectId& id) noexcept = 0;
};

}  // namespace fbfs
