// Unpacking a pack into a store, all or nothing.
//
// Objects the pool lacks are written to temp files as they stream in (each checked against its
// id); objects the pool has are checked and skipped. Only when the whole pack has been read and
// checked does one LMDB write transaction replace every packed volume and move the new objects
// into the pool, so any error — a damaged pack, a full disk, a volume being mounted — leaves the
// store as it was and no temp file behind. Volumes of the store that the pack does not hold are
// left alone. The temp files live in a work directory, tmp/unpack-*, locked while the unpack
// runs: a killed unpack leaves its directory, and the next unpack of the store removes it.
//
// Ownership: as root, files keep the owners recorded in the pack (as tar does); any other user
// becomes the owner of everything unpacked, so the mount lets them write to it. Attributes: such
// a user's unpack refuses (EPERM) a selected volume with a `trusted.` or `security.` attribute,
// which ext4 lets only a privileged caller set.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/base/error.h"
#include "store/base/progress.h"

namespace fbfs {

class Store;

struct UnpackSummary {
    std::size_t volumes = 0;
    std::size_t objects = 0;
    std::size_t objects_added = 0;    // new to the pool; the rest were there already
    std::uint64_t logical_bytes = 0;  // the volumes' regular files, each inode once
    std::uint64_t object_bytes = 0;   // the distinct objects' bytes
    std::uint64_t packed_bytes = 0;   // the pack's length
};

// Reads a pack from `fd` into `store`. Refuses, before reading any object, a pack with a volume
// that a mount of `store` is serving. With `only` not empty, installs only the volumes it names
// (and the objects they name); a name the pack lacks is ENOENT, before anything changes.
Result<UnpackSummary> unpack(Store& store, int fd, const ProgressFn& progress,
                             const std::vector<std::string>& only = {});

}  // namespace fbfs
