// Writing packs (format in pack_format.h and docs/FORMAT.md).
//
// write_pack() streams: it writes the header, metadata and object table, then compresses every
// object the volumes name, once, into zstd frames of up to `frame_size` bytes with long-distance
// matching and zstd's worker threads, so the pack compresses like one solid stream while a reader
// can still decompress a single frame; then the frame table and the footer. It never seeks, so
// the output may be a pipe. Each object is re-hashed on the way: a pool object whose bytes no
// longer match its id fails the pack rather than shipping bad bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/base/progress.h"
#include "store/base/unique_fd.h"
#include "store/meta/volume_snapshot.h"

namespace fbfs {

class Store;

struct PackOptions {
    int level = 3;                                       // zstd level, 1..19
    unsigned threads = 0;                                // zstd workers; 0: one per core
    std::uint64_t frame_size = std::uint64_t{64} << 20;  // object-stream bytes per frame
};

struct PackSummary {
    std::size_t volumes = 0;
    std::size_t objects = 0;
    std::uint64_t logical_bytes = 0;  // the volumes' regular files, each inode once
    std::uint64_t object_bytes = 0;   // the distinct objects' bytes (after dedupe)
    std::uint64_t packed_bytes = 0;   // the pack's length
};

using OpenObject = std::function<Result<UniqueFd>(const ObjectId&)>;

// Writes a pack of `volumes` to `fd`, reading object bytes through `open`.
Result<PackSummary> write_pack(int fd, const std::vector<VolumeSnapshot>& volumes,
                               const OpenObject& open, const PackOptions& options,
                               const ProgressFn& progress);

// Packs volumes `names` of `store` (all of them if empty) to `fd`. Refuses a volume that a mount
// is serving (its open files are not in the store yet) and keeps any mount from starting until
// the pack is written. An object the pool lacks comes through the pool's fetcher, if the caller
// set one (ObjectPool::open_or_fetch: the store's remote origin).
Result<PackSummary> pack_store(Store& store, const std::vector<std::string>& names, int fd,
                               const PackOptions& options, const ProgressFn& progress);

}  // namespace fbfs
