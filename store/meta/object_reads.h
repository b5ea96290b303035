// When each object was last read through a mount: the `object_reads` table (raw object id → u64
// time in ns), so that `fbfs gc` drops the pooled objects a remote holds least recently read
// first (remote_objects.h, volume_gc.h).
//
// A read costs no transaction: a mount's ReadLog is told of each file opened for reading (at the
// open, once per open and not per read, through ObjectPool::note_read) and keeps the ids in
// memory, and the daemon writes them in one transaction every k_read_flush_interval and when the
// mount ends, each with the time of that write. A row is so
// at most one interval late, and a killed daemon loses at most one interval's reads: the order
// gc uses is a hint, never a reason to lose data. The table came after schema 1 without changing
// an encoding (as volume_times.h): an older fbfs ignores it.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <unordered_set>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/base/thread_safety.h"
#include "store/base/time_ns.h"
#include "store/meta/lmdb.h"
#include "store/pool/read_observer.h"

namespace fbfs {

class Store;
struct Tables;

inline constexpr std::chrono::seconds k_read_flush_interval{30};

class ReadLog final : public ObjectReadObserver {
public:
    void object_read(const ObjectId& id) noexcept override;
    // Writes the ids noted since the last flush, each read at `now`, in one transaction, and
    // returns how many. On failure they are kept for the next flush.
    Result<std::size_t> flush(Store& store, TimeNs now);

private:
    Mutex m_mutex;
    std::unordered_set<ObjectId> m_ids GUARDED_BY(m_mutex);
};

// When `id` was last read, or nullopt if no mount has read it since it came. A row that does not
// decode is an EIO Error.
Result<std::optional<TimeNs>> read_last_read(const LmdbTxn& txn, const Tables& tables,
                                             const ObjectId& id);

}  // namespace fbfs
