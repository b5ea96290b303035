// fbfs push and fbfs pull: a store's volumes to and from a remote HTTP cache (http_cas.h).
//
// push uploads every object of the volumes that the cache lacks (a HEAD of each, and a PUT of
// each missing one as soon as its HEAD answers) and the manifest (manifest.h) alongside, then
// points ac/<SHA-256 of the key> at it: the entry is written last, so a runner that finds it
// finds everything it names.
//
// pull installs the volumes of the manifest a key names, checked as unpack checks a pack, in one
// LMDB transaction with the volumes locked against mounts: all or nothing. Without `eager` no
// object is fetched and the store records the cache as its origin (remote_origin.h), so a mount
// fetches each object on first read; with `eager` every object the pool lacks is fetched first,
// in parallel, each checked by hash, and a failure leaves the pool as it was.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/remote/http_cas.h"

namespace fbfs {

class Store;

struct PushSummary {
    std::size_t volumes = 0;
    std::size_t objects = 0;           // distinct objects the volumes name
    std::size_t objects_uploaded = 0;  // those the cache lacked
    std::uint64_t bytes_uploaded = 0;  // their bytes
    std::uint64_t manifest_bytes = 0;
    ObjectId manifest;
};

// Pushes volumes `names` of `store` (all if empty) under `key`. Refuses a volume a mount is
// serving. An object the cache lacks and the pool too is named (ENOENT, with `fbfs verify`).
Result<PushSummary> push_volumes(Store& store, HttpCas& cas, const std::vector<std::string>& names,
                                 std::string_view key);

struct PullSummary {
    std::size_t volumes = 0;
    std::size_t objects = 0;          // distinct objects the volumes name
    std::size_t objects_fetched = 0;  // eager only
    std::uint64_t bytes_fetched = 0;
    std::size_t objects_remote = 0;  // named, not in the pool: fetched on first read
    std::uint64_t manifest_bytes = 0;
    std::vector<std::string> names;  // the volumes installed
};

// Pulls what `key` names into `store`. ENOENT if the cache has no such key; the manifest's
// problems as decode_manifest() says them; a volume being served is refused before anything is
// fetched.
Result<PullSummary> pull_volumes(Store& store, HttpCas& cas, std::string_view key, bool eager);

}  // namespace fbfs
