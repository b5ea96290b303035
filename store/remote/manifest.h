// The manifest: what `fbfs push` stores in a remote cache for `fbfs pull` to install — the
// volumes' metadata without any object bytes. Format version 1 (docs/FORMAT.md):
//
//   header        48 bytes: "FBFSMNFT", u32 version (1), u32 metadata layout (the pack format
//                 version whose metadata encoding the section uses), SHA-256 of those 16 bytes
//   object table  a pack section (store/pack/pack_format.h): every object's id and size
//   metadata      a pack section: the volumes, naming objects by their index in the table
//
// The manifest is itself stored under its SHA-256 in the cache's cas/, and the named entry
// ac/<SHA-256 of the key> holds "fbfs-manifest 1 <hex id> <size>\n". Nothing here does I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/meta/volume_snapshot.h"
#include "store/pack/pack_format.h"

namespace fbfs {

inline constexpr std::string_view k_manifest_magic = "FBFSMNFT";
inline constexpr std::uint32_t k_manifest_version = 1;
// A manifest larger than this is refused before it is fetched whole.
inline constexpr std::uint64_t k_max_manifest = std::uint64_t{1} << 31;

struct Manifest {
    std::vector<VolumeSnapshot> volumes;
    std::vector<pack::PackedObject> objects;  // every object the volumes name, once
};

// The manifest of `volumes`, objects listed in first-named order. An Error only if a section
// would be larger than a reader accepts.
Result<std::string> encode_manifest(const std::vector<VolumeSnapshot>& volumes);
// Parses and checks a manifest as unpack checks a pack: section digests, every volume through
// check_snapshot(), every listed object named by some volume. EINVAL for what is no manifest,
// EPROTONOSUPPORT for a newer version, EBADMSG ("the manifest is damaged: ...") otherwise.
Result<Manifest> decode_manifest(std::string_view bytes);

// The value of the ac/ entry that names a manifest, and back (nullopt if it is not one).
struct ManifestRef {
    ObjectId id;
    std::uint64_t size = 0;
};
std::string encode_manifest_ref(const ManifestRef& ref);
std::optional<ManifestRef> decode_manifest_ref(std::string_view value);

// The ac/ key for a name: SHA-256 of its bytes.
inline ObjectId manifest_key(std::string_view name) {
    return ObjectId::of(name);
}

}  // namespace fbfs
