// What each volume holds and what dropping volumes would give back: for `fbfs volume list`,
// `fbfs volume rm --dry-run` and `fbfs gc`.
//
// Nothing is kept for this beyond the `refs` table: a volume's share is found by walking its
// inodes (time proportional to its metadata) and comparing how often it names each object with
// the object's count in `refs`. An object is a volume's own when every reference to it is that
// volume's.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/base/error.h"
#include "store/meta/lmdb.h"
#include "store/meta/store.h"
#include "store/meta/volume_times.h"

namespace fbfs {

// Objects a removal gives back, and their bytes.
struct Freed {
    std::uint64_t objects = 0;
    std::uint64_t bytes = 0;

    Freed& operator+=(const Freed& other) {
        objects += other.objects;
        bytes += other.bytes;
        return *this;
    }
};

struct VolumeUsage {
    std::string name;
    VolumeId id = 0;
    std::uint64_t files = 0;
    std::uint64_t directories = 0;
    std::uint64_t symlinks = 0;
    std::uint64_t logical_bytes = 0;  // the sum of the sizes of its regular files
    Freed exclusive;                  // the objects only this volume names
    std::uint64_t stamps = 0;         // source-file stamps (--source mounts)
    std::optional<VolumeTimes> times;
};

// Which volume names which object how often, against the `refs` table, read in one transaction.
// Not thread-safe.
class ObjectUse {
public:
    // Reads every inode of every volume (orphans included, as `refs` counts them) and the counts
    // of the objects they name. Fails on metadata that does not decode.
    static Result<ObjectUse> read(const LmdbTxn& txn, const Tables& tables,
                                  const std::vector<VolumeInfo>& volumes);

    // What removing volume `id` alone would give back.
    Freed exclusive(VolumeId id) const;
    // Whether volume `id` names `object`.
    bool names(VolumeId id, const ObjectId& object) const;
    // From now on counts only the objects `present` says the pool holds: a lazily pulled
    // volume's objects not fetched yet (or dropped by gc) free nothing.
    void count_only(const std::function<bool(const ObjectId&)>& present);
    // Takes volume `id`'s references away and returns the objects no volume still names (so
    // repeated calls say what removing all those volumes gives back).
    Freed drop(VolumeId id);

private:
    struct Held {
        std::uint64_t count = 0;  // inodes of the volume naming the object
        std::uint64_t size = 0;
    };
    std::map<VolumeId, std::unordered_map<ObjectId, Held>> m_held;
    std::unordered_map<ObjectId, std::uint64_t> m_refs;  // left after drop()s
};

// After a removal committed: deletes the objects it freed (Store::remove_dead_objects). A failure
// is logged, not returned: the removal is done, and what is left stays listed for the next one.
void reap_after_commit(Store& store);

// Every volume of the store, by name, read in `txn`.
Result<std::vector<VolumeInfo>> read_volumes(const LmdbTxn& txn, const Tables& tables);

// Every volume's usage, by name, read in one transaction.
Result<std::vector<VolumeUsage>> collect_volume_usage(const Store& store);

}  // namespace fbfs
