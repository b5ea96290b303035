// The checks `fbfs mount` makes before it starts a daemon: everything a user can get wrong (the
// volume name, the source, the mountpoint, /dev/fuse, fusermount3, the store, the volume lock),
// each reported as one Error that names the thing and the fix. Safe from any thread.
#pragma once

#include "fs/mount.h"
#include "store/base/error.h"

namespace fbfs {

// Checks what can be checked before forking (the daemon reports the rest). Creates a missing
// store. Fails with the first problem found.
Result<void> check_mount_request(const MountRequest& request);

}  // namespace fbfs
