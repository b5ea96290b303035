// VolumeSnapshot: a whole volume as plain values — its inodes, directory entries, extended
// attributes and lower-file stamps. This is what a pack carries (store/pack/pack_format.h) and what
// unpack puts in place of a volume; snapshot_tables.h reads one from the store and writes one back,
// each in one transaction. Nothing here touches LMDB.
//
// check_snapshot() is the gate for anything read from outside the store: it accepts only a tree
// a mount could have made (every name a single path component, every directory reachable from
// the root once, link counts that add up, object sizes that match), so a hostile pack cannot
// plant a name like "..", a loop, or a symlink the store would ever follow (targets are data),
// nor an attribute a mount would have refused (store/meta/xattr.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "store/base/error.h"
#include "store/meta/schema.h"
#include "store/meta/xattr.h"

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

// One extended attribute of inode `ino`.
struct SnapshotXattr {
    InodeNumber ino = 0;
    Xattr xattr;
    bool operator==(const SnapshotXattr&) const = default;
};

struct VolumeSnapshot {
    std::string name;
    InodeNumber next_inode = k_root_inode + 1;
    std::map<InodeNumber, InodeRecord> inodes;  // orphans (nlink 0) are left out
    std::vector<SnapshotEntry> entries;         // in (parent, name) order
    std::vector<SnapshotStamp> stamps;          // in path order
    std::vector<SnapshotXattr> xattrs;          // in (inode, name) order; linked inodes' only
};

// Checks everything described above. `object_sizes` gives the size of every object the
// snapshot may name; an object outside it is an error. The message names the volume and the
// offending inode, name or path.
Result<void> check_snapshot(const VolumeSnapshot& snapshot,
                            const std::unordered_map<ObjectId, std::uint64_t>& object_sizes);

// The first of its attributes that only a privileged caller may set (`trusted.`, `security.`:
// is_privileged_xattr_name), or nullptr. A user other than root could not have made one through
// a mount, so unpack and pull refuse to install it for such a user.
const SnapshotXattr* privileged_xattr(const VolumeSnapshot& snapshot);

// The bytes of its regular files, each inode counted once.
std::uint64_t logical_bytes(const VolumeSnapshot& snapshot);

// True if `name` is usable as one directory entry: 1..255 bytes, not "." or "..", no '/' or NUL.
bool is_entry_name(std::string_view name);

}  // namespace fbfs
