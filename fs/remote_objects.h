// Objects from a remote cache for a mount: a volume pulled without --eager has its files' bytes
// in the cache, not the pool. The mount gives the store's pool a RemoteFetcher, so the first
// open-for-read (the first read, in fact: the object is opened lazily) of such a file fetches its
// object, checks it by hash and publishes it in the pool; a failure is EIO and one log line.
// getattr and lookup never fetch: sizes come from the metadata.
#pragma once

#include <string>

#include "store/base/error.h"

namespace fbfs {

class Store;

// Checks `remote` (from --remote or $FBFS_REMOTE; empty: none) and $FBFS_REMOTE_* before a
// mount forks. EINVAL naming the problem.
Result<void> check_mount_remote(const std::string& remote);

// Gives `store` a fetcher for `remote`, or for the store's recorded origin (remote_origin.h) if
// `remote` is empty; none if neither. Logs which cache it fetches from (never credentials).
Result<void> attach_remote(Store& store, const std::string& remote);

}  // namespace fbfs
