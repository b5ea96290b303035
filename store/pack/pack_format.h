// The pack format, versions 1 and 2: the byte layout of every part of a pack file and how each is
// encoded and checked. docs/FORMAT.md is its specification; this file and pack_format.cpp must
// say the same. The writer (pack_writer.h) and the reader (pack_reader.h) are built from these
// pieces; nothing here does I/O.
//
//   header        48 bytes: magic, version, flags, SHA-256 of the 16 bytes before it
//   object table  a section: every object's id and size, in the order of the object stream
//   metadata      a section: the volumes (inodes, entries, stamps, and from version 2 extended
//                 attributes); inodes name objects by their index in the object table
//   frames        the object stream (all objects' bytes back to back) cut into zstd frames
//   frame table   a section: each frame's sizes and the SHA-256 of its compressed bytes
//   footer        80 bytes: where each part starts, its SHA-256, end magic
//
// A section is a 56-byte header (kind, flags, stored size, raw size, SHA-256 of those 24 bytes
// and the stored bytes) followed by the stored bytes: one zstd frame holding the raw bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/meta/volume_snapshot.h"

namespace fbfs::pack {

inline constexpr std::string_view k_magic = "FBFSPACK";
inline constexpr std::string_view k_end_magic = "FBFSEND\n";
// The newest version this fbfs writes and reads; it reads every version from k_oldest_version
// on. Version 1 is version 2 without extended attributes. A pack is written in the oldest version
// that holds its volumes (version_for()), so older fbfs keep reading what they can.
inline constexpr std::uint32_t k_version = 2;
inline constexpr std::uint32_t k_oldest_version = 1;

inline constexpr std::size_t k_header_size = 48;
inline constexpr std::size_t k_section_header_size = 56;
inline constexpr std::size_t k_footer_size = 80;

// What a reader accepts at most; beyond these a pack is refused as damaged or hostile.
inline constexpr std::uint64_t k_max_section_raw = std::uint64_t{1} << 30;
inline constexpr std::uint64_t k_max_frame_raw = std::uint64_t{1} << 30;
inline constexpr std::uint64_t k_max_stream = std::uint64_t{1} << 56;  // all objects' bytes
inline constexpr int k_max_window_log = 27;  // 128 MiB of decoder memory per frame

enum class SectionKind : std::uint32_t { metadata = 1, object_table = 2, frame_table = 3 };
std::string_view section_name(SectionKind kind);

struct PackedObject {
    ObjectId id;
    std::uint64_t size = 0;
};

struct FrameInfo {
    std::uint64_t raw_size = 0;     // bytes of the object stream it holds
    std::uint64_t stored_size = 0;  // bytes of the zstd frame in the file
    ObjectId sha256;                // of the stored bytes
};

struct Footer {
    std::uint64_t object_table_offset = 0;
    std::uint64_t metadata_offset = 0;
    std::uint64_t frames_offset = 0;
    std::uint64_t frame_table_offset = 0;
    std::uint64_t footer_offset = 0;  // = the pack's length - k_footer_size
};

struct SectionHeader {
    SectionKind kind{};
    std::uint64_t stored_size = 0;
    std::uint64_t raw_size = 0;
    ObjectId sha256;
};

// The oldest version that holds `volumes`: 2 if any has extended attributes, else 1.
std::uint32_t version_for(const std::vector<VolumeSnapshot>& volumes);

std::string encode_header(std::uint32_t version);
// Checks magic, length, digest and version, in that order, so a damaged header is reported as
// damaged and only an intact one from a newer fbfs as newer. `bytes` may be short: the start of
// a file shorter than a header (a prefix of the magic is a truncated pack, anything else none).
// Returns the pack's format version.
Result<std::uint32_t> check_header(std::string_view bytes);

// A whole section: header and stored bytes, the raw bytes compressed at `level`. EFBIG if `raw`
// is more than a reader accepts (k_max_section_raw); an Error if zstd fails. Never a section a
// reader would refuse.
Result<std::string> encode_section(SectionKind kind, std::string_view raw, int level);
// The header of a section of kind `expected` (the first k_section_header_size bytes).
Result<SectionHeader> decode_section_header(std::string_view bytes, SectionKind expected);
// The raw bytes of a section, after checking its digest over `header_bytes` and `stored`.
Result<std::string> open_section(const SectionHeader& header, std::string_view header_bytes,
                                 std::string_view stored);

std::string encode_object_table(const std::vector<PackedObject>& objects);
// Parses the object table, refusing an id listed twice.
Result<std::vector<PackedObject>> decode_object_table(std::string_view raw);

// The metadata as format `version` lays it out, which must be version_for(volumes) or newer.
// `objects` must hold every object the volumes name.
std::string encode_metadata(const std::vector<VolumeSnapshot>& volumes,
                            const std::vector<PackedObject>& objects, std::uint32_t version);
// Parses the metadata of a pack of format `version` (from check_header()); the snapshots are not
// checked yet (see check_snapshot()).
Result<std::vector<VolumeSnapshot>> decode_metadata(std::string_view raw,
                                                    const std::vector<PackedObject>& objects,
                                                    std::uint32_t version);
// Checks decoded `volumes` against the object table `objects` they were decoded with, as a reader
// must before it trusts either: each volume through check_snapshot(), and every listed object
// named by some volume. On failure the Error's message says only what is wrong, for the caller to
// wrap as damage to what held them (a pack, a manifest).
Result<void> check_volumes(const std::vector<VolumeSnapshot>& volumes,
                           const std::vector<PackedObject>& objects);

std::string encode_frame_table(const std::vector<FrameInfo>& frames);
Result<std::vector<FrameInfo>> decode_frame_table(std::string_view raw);

std::string encode_footer(const Footer& footer);
Result<Footer> decode_footer(std::string_view bytes);

// "the pack is damaged: <what> (make it again)" — every integrity failure reads this way.
std::unexpected<Error> damaged(std::string_view what);

}  // namespace fbfs::pack
