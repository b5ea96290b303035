// VolumeSnapshot: a whole volume as plain values — its inodes, directory entries and lower-file
// stamps — read from the store in one transaction, checked, and written back in one transaction.
// This is what a pack carries (pack_format.h) and what unpack puts in place of a volume.
//
// check() is the gate for anything read from outside the store: it accepts only a tree a mount
// could have made (every name a single path component, every directory reachable from the root
// once, link counts that add up, object sizes that match), so a hostile pack cannot plant a name
// like "..", a loop, or a symlink the store would ever follow (targets are data).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/error.h"
#include "store/lmdb.h"
#include "store/schema.h"
#include "store/store.h"

namespace fbfs {

struct SnapshotEntry {
    InodeNumber parent = 0;
    std::string name;
    DirentValue value;  // a whiteout has ino 0 and type DT_WHT
};

struct SnapshotStamp {
    std::string path;  // relative to the source tree, components joined by '/'
    LowerStamp stamp;
};

struct VolumeSnapshot {
    std::string name;
    InodeNumber next_inode = k_root_inode + 1;
    std::map<InodeNumber, InodeRecord> inodes;  // orphans (nlink 0) are left out
    std::vector<SnapshotEntry> entries;         // in (parent, name) order
    std::vector<SnapshotStamp> stamps;          // in path order
};

// Reads volume `name` inside `txn`; ENOENT if the store has no such volume.
Result<VolumeSnapshot> read_snapshot(const LmdbTxn& txn, const Tables& tables,
                                     std::string_view name);

// Checks everything check() describes above. `object_sizes` gives the size of every object the
// snapshot may name; an object outside it is an error. The message names the volume and the
// offending inode, name or path.
Result<void> check_snapshot(const VolumeSnapshot& snapshot,
                            const std::unordered_map<ObjectId, std::uint64_t>& object_sizes);

// Within a write transaction: replaces volume `snapshot.name` (creating it if missing) by the
// snapshot, keeping the volume's id, and adjusts object reference counts; objects no inode names
// any more are listed in `dead` for Store::remove_dead_objects(). The caller must hold the
// volume's lock and must have checked the snapshot.
Result<void> replace_volume(LmdbTxn& txn, const Tables& tables, const VolumeSnapshot& snapshot);

// The bytes of its regular files, each inode counted once.
std::uint64_t logical_bytes(const VolumeSnapshot& snapshot);

// True if `name` is usable as one directory entry: 1..255 bytes, not "." or "..", no '/' or NUL.
bool is_entry_name(std::string_view name);

}  // namespace fbfs
