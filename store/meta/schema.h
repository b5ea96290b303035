// The metadata schema: the LMDB tables of a store and how their keys and values are encoded.
//
// Every integer is stored big-endian in keys (so LMDB's byte order is numeric order) and
// little-endian in values. docs/ARCHITECTURE.md describes the tables; bump k_schema_version on any
// change to an encoding, and teach open() to migrate or refuse.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/base/time_ns.h"

namespace fbfs {

inline constexpr std::uint32_t k_schema_version = 1;

using InodeNumber = std::uint64_t;
using VolumeId = std::uint32_t;
inline constexpr InodeNumber k_root_inode = 1;  // FUSE_ROOT_ID

// One inode of a volume: a regular file, directory, symlink, fifo, socket or device node.
struct InodeRecord {
    enum Flags : std::uint32_t {
        k_opaque = 1u << 0,  // a directory that hides the lower layer's directory of that path
    };

    std::uint32_t mode = 0;  // type and permission bits, as st_mode
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::uint32_t nlink = 0;
    std::uint64_t size = 0;
    std::uint64_t rdev = 0;
    TimeNs atime = 0;
    TimeNs mtime = 0;
    TimeNs ctime = 0;
    std::uint32_t flags = 0;
    std::optional<ObjectId> object;  // a regular file's content; none for an empty file
    std::string symlink_target;      // a symlink's target, stored as data and never followed

    bool is_dir() const { return S_ISDIR(mode); }
    bool is_reg() const { return S_ISREG(mode); }
    bool is_symlink() const { return S_ISLNK(mode); }

    std::string encode() const;
    static Result<InodeRecord> decode(std::string_view bytes);
    bool operator==(const InodeRecord&) const = default;
};

// A directory entry's value: the child's inode and its type (DT_* of <dirent.h>). A whiteout
// (DT_WHT, inode 0) hides the lower layer's entry of that name.
struct DirentValue {
    InodeNumber ino = 0;
    std::uint8_t type = 0;

    bool is_whiteout() const;
    std::string encode() const;
    static Result<DirentValue> decode(std::string_view bytes);
};

// A lower file's stamp: what fbfs last saw at a relative path of the source tree. `content` is
// the content's identity: for a file or a symlink its git blob id (SHA-1 of "blob <size>\0" and
// the bytes, which git's index also records) in the first 20 bytes and zeros after; for a
// directory the SHA-256 of its sorted entry names and types.
struct LowerStamp {
    ObjectId content;
    std::uint64_t size = 0;
    TimeNs shown_mtime = 0;  // the mtime the mount shows while the content stays the same

    std::string encode() const;
    static Result<LowerStamp> decode(std::string_view bytes);
};

// A volume's record in the `volumes` table, keyed by its name.
struct VolumeRecord {
    VolumeId id = 0;
    InodeNumber next_inode = k_root_inode + 1;

    std::string encode() const;
    static Result<VolumeRecord> decode(std::string_view bytes);
};

// Keys. A volume's rows share the prefix of its id, so a volume can be walked or dropped whole.
std::string volume_prefix(VolumeId volume);
std::string inode_key(VolumeId volume, InodeNumber ino);
std::string dirent_prefix(VolumeId volume, InodeNumber parent);
std::string dirent_key(VolumeId volume, InodeNumber parent, std::string_view name);
std::string stamp_key(VolumeId volume, std::string_view relative_path);
// An extended attribute of an inode: its key starts with inode_key(volume, ino), so an inode's
// attributes are found, in name order, and dropped together.
std::string xattr_key(VolumeId volume, InodeNumber ino, std::string_view name);

// Parses an inode key back; nullopt if `key` is not one.
std::optional<InodeNumber> inode_of_key(std::string_view key);

// Little-endian u64 values (the `refs` table and counters).
std::string encode_u64(std::uint64_t value);
std::optional<std::uint64_t> decode_u64(std::string_view bytes);

// A volume name is 1..128 characters of [A-Za-z0-9._-], not starting with '.'; so it is safe as a
// file name and never "." or "..". Returns an Error that says what is wrong.
Result<void> check_volume_name(std::string_view name);

}  // namespace fbfs
