// ObjectBlocks: what each object of a pool takes on its disk (st_blocks, 512-byte blocks, holes
// excluded), remembered after the first stat. An object's bytes never change, so neither do its
// blocks: a getattr of a large file then costs no stat of its object. An object the pool lacked
// (one not fetched yet from a remote cache) is remembered as absent until this process publishes
// it. Another process that removes an object and puts the same bytes back may lay them out
// otherwise; the count then shown is the first layout's, which is harmless for a count that
// only `du` and hole-seeking copies read.
//
// Thread-safe: one mutex guards the map only; no system call is made under it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>

#include "store/base/object_id.h"
#include "store/base/thread_safety.h"

namespace fbfs {

class ObjectBlocks {
public:
    // The most objects remembered; past it the map starts again empty (each entry stands for an
    // object of at least 64 KiB, so this many stand for 16 GiB of files or more).
    static constexpr std::size_t k_max_objects = std::size_t{1} << 18;

    struct Known {
        bool known = false;                   // found in the map
        std::optional<std::uint64_t> blocks;  // if known: the blocks, or none for absent
        std::uint64_t generation = 0;         // to hand back to remember()
    };

    ObjectBlocks() = default;
    ObjectBlocks(const ObjectBlocks&) = delete;
    ObjectBlocks& operator=(const ObjectBlocks&) = delete;

    Known find(const ObjectId& id) const EXCLUDES(m_mutex);
    // Records what a stat found (`blocks`, or none: the object is absent), unless forget() ran
    // since the find() that returned `generation`: then the stat may have seen the old state.
    void remember(const ObjectId& id, std::optional<std::uint64_t> blocks, std::uint64_t generation)
        EXCLUDES(m_mutex);
    // Forgets `id`, which this process just published or removed.
    void forget(const ObjectId& id) EXCLUDES(m_mutex);

private:
    mutable Mutex m_mutex;
    std::unordered_map<ObjectId, std::optional<std::uint64_t>> m_blocks GUARDED_BY(m_mutex);
    std::uint64_t m_generation GUARDED_BY(m_mutex) = 0;  // counts forget() calls
};

}  // namespace fbfs
