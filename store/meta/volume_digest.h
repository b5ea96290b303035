// The content digest of a volume: one SHA-256 over what its own tree holds (what builds wrote),
// with every timestamp and inode number left out. Two volumes whose trees have the same names,
// types, modes, owners, sizes, contents (object ids), symlink targets, device numbers, extended
// attributes, hard links, whiteouts and opaque directories have the same digest, whoever wrote
// them and when.
// Lower-file stamps are left out too: every fresh clone's .git (its index holds stat data) would
// make them differ although the build is the same.
//
// The GitHub Action compares the digest of the store it restored with the one it is about to
// pack: a run whose build wrote nothing new saves no new cache entry. Pure functions;
// thread-safe.
#pragma once

#include <string_view>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/meta/store.h"
#include "store/meta/volume_snapshot.h"

namespace fbfs {

// The digest of one volume. The snapshot must be one check_snapshot() accepts (or that a store
// holds): an entry whose inode is missing is hashed as a dangling name, not an error.
ObjectId content_digest(const VolumeSnapshot& snapshot);

// The digest of a store's volumes, each named, in name order; only `only_volume` when it is not
// empty. Fails when the metadata cannot be read, or (ENOENT) when `only_volume` is not there.
Result<ObjectId> store_content_digest(const Store& store, std::string_view only_volume);

}  // namespace fbfs
