// GitIndex: what a git work tree's index vouches for, so that a mount's start-up cost does not
// grow with the checkout.
//
// For each tracked file, git's index (.git/index) holds the id of the blob of its content and
// the stat data the file had when git last wrote or checked it: ctime, mtime, inode, uid, gid,
// size and mode. Git itself trusts a file unchanged while that stat data still matches and the
// file's mtime is older than the index (a file written in the same instant as the index is
// "racily clean", and git reads it again). fbfs trusts exactly what git trusts: a vouched file's
// content identity is its blob id, and it is not read.
//
// Only a `.git` directory at the source's root is read, index versions 2 to 4 with SHA-1 object
// names; anything else (no repository, a worktree's `.git` file, a SHA-256 repository, a damaged
// index) vouches for nothing and every file is hashed, as without git. Entries git would not
// trust either are left out: unmerged, skip-worktree, intent-to-add, assume-unchanged, gitlinks.
//
// Immutable once loaded: thread-safe.
#pragma once

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "fs/lower_layer.h"
#include "store/base/error.h"
#include "store/meta/schema.h"

namespace fbfs {

// A git blob id: SHA-1 of "blob <size>\0" and the content.
using GitBlobId = std::array<std::uint8_t, 20>;

class GitIndex {
public:
    GitIndex() = default;

    // Reads <source>/.git/index; an index that cannot be used is an empty one, and why is
    // logged at info level.
    static GitIndex load(const LowerLayer& lower);
    // Parses the bytes of an index file whose own mtime is `index_mtime`. Fails on anything that
    // is not a complete index of version 2, 3 or 4, naming what is wrong.
    static Result<GitIndex> parse(std::string_view bytes, TimeNs index_mtime);

    // The blob id git recorded for the file at `path`, if its lstat `st` says it still has it.
    std::optional<GitBlobId> vouch(const std::string& path, const struct stat& st) const;
    std::size_t size() const { return m_entries.size(); }

private:
    struct Entry {
        std::uint32_t ctime_s, ctime_ns, mtime_s, mtime_ns;
        std::uint32_t ino, mode, uid, gid, size;
        GitBlobId blob;
    };
    std::unordered_map<std::string, Entry> m_entries;
    TimeNs m_index_mtime = 0;
};

// The blob id of `bytes`, or of a file read from `fd` (`size` bytes from offset 0).
GitBlobId git_blob_id(std::string_view bytes);
Result<GitBlobId> git_blob_id(int fd, std::uint64_t size);

}  // namespace fbfs
