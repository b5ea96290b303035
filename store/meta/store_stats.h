// What a store holds, for `fbfs stat` and `fbfs verify`: per-volume counts and logical bytes, and
// the pool's objects and stored bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/base/error.h"
#include "store/meta/store.h"

namespace fbfs {

struct VolumeStats {
    std::string name;
    std::uint64_t files = 0;
    std::uint64_t directories = 0;
    std::uint64_t symlinks = 0;
    std::uint64_t logical_bytes = 0;  // the sum of the sizes of its regular files
};

struct StoreStats {
    std::vector<VolumeStats> volumes;
    std::uint64_t objects = 0;
    std::uint64_t stored_bytes = 0;  // bytes of all objects, each counted once
    std::uint64_t referenced_objects = 0;
};

// Walks every volume's inodes and the pool. Fails on unreadable metadata or pool.
Result<StoreStats> collect_stats(const Store& store);

// Every object some inode of some volume names, each once.
Result<std::vector<ObjectId>> referenced_objects(const Store& store);

// An extended attribute left behind by an inode that is gone (it should have gone with it).
struct LeakedXattr {
    std::string volume;  // its name, or "#<id>" for a volume id the store no longer has
    InodeNumber ino = 0;
    std::string name;
};

// Every row of the `xattrs` table whose inode does not exist, in key order.
Result<std::vector<LeakedXattr>> leaked_xattrs(const Store& store);

}  // namespace fbfs
