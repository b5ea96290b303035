// The daemon that serves a mount: started by `fbfs mount`, detached from it (its own session,
// nobody's child), logging to <store>/log/<volume>.log; or, with --foreground, the calling
// process itself. It opens the store, takes the volume's lock, tidies what a killed daemon left,
// mounts, and serves until the mount goes away.
#pragma once

#include <functional>

#include "fs/mount.h"
#include "store/base/error.h"

namespace fbfs {

// Serves `request`'s volume in this process until the mount goes away. `ready` is called once
// the mount is usable. Fails with what stopped it (before or after `ready`).
Result<void> serve_volume(const MountRequest& request, const std::function<void()>& ready);

// Starts a detached daemon that serves `request`'s volume and returns once the mount is usable,
// or with the error that stopped the daemon.
Result<void> start_daemon(const MountRequest& request);

}  // namespace fbfs
