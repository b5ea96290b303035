// Whole directory trees in tests: deterministic contents to fill them with, a snapshot that
// describes every entry in one line, a Catch check that two snapshots agree entry by entry, and
// where a store keeps its files (count_files, object_path).
//
// Stateless; safe from any thread except check_same_tree, which asserts through Catch (the test
// thread only).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "store/base/object_id.h"

namespace fbfs::test {

// Relative path ("." for the root) to the line snapshot() wrote for it.
using Snapshot = std::map<std::string, std::string>;

// Deterministic pseudo-random bytes (splitmix64), the same for the same seed.
std::string random_bytes(std::uint64_t seed, std::size_t size);

// "file", "dir", "symlink", "fifo" or "other" for the type bits of `mode`.
std::string file_type(mode_t mode);

// Regular files under `dir`, recursively; 0 if it does not exist.
std::size_t count_files(const std::filesystem::path& dir);

// Where `store` keeps object `id`: objects/ab/cdef….
std::filesystem::path object_path(const std::filesystem::path& store, const ObjectId& id);

// Whether a snapshot holds mtimes: a remount must keep them; two filesystems that ran the same
// operations at other moments differ in them.
enum class Times { kept, left_out };

// One line per path under `root` (and "." for root itself) with everything a remount must keep
// except the inode number: type, mode, owner, link count, mtime to the nanosecond (unless
// left out), size and SHA-256 of a file's bytes or a symlink's target, and `user.` extended
// attributes, if any. Throws (std::system_error or std::filesystem::filesystem_error) if any
// entry cannot be read.
Snapshot snapshot(const std::filesystem::path& root, Times times = Times::kept);

// CHECKs, path by path, that `actual` has exactly the lines of `expected` ("<missing>" for a path
// only one of them has).
void check_same_tree(const Snapshot& expected, const Snapshot& actual);

}  // namespace fbfs::test
