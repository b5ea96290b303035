// StampBook: content-stable mtimes for the files and directories of an overlay's source tree.
//
// For each lower path the volume keeps a LowerStamp: the identity of its content (a file's git
// blob id, taken from git's index where that vouches for the file, else hashed; for a directory
// the SHA-256 of its sorted entry names and types), its size, and the mtime shown for it. While a
// path's content stays what was recorded, the mount shows the recorded mtime, whatever the real
// one is (a fresh checkout on another runner); new or changed content shows its real mtime, and
// that is recorded. Each path is hashed at most once per mount unless its real size, mtime,
// ctime or inode changes. Git's object store (.git/objects, .git/lfs) is left out: its files,
// no build's input and up to the checkout's size, show their real mtimes.
//
// Thread-safe. m_mutex guards m_seen; hashing and LMDB happen outside it, so two threads may
// hash one file at once, which is harmless.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <string>
#include <unordered_map>

#include "fs/git_index.h"
#include "fs/lower_layer.h"
#include "store/base/thread_safety.h"
#include "store/meta/schema.h"
#include "store/meta/volume_tree.h"

namespace fbfs {

class StampBook {
public:
    // How each file's content identity was found since the mount.
    struct Counts {
        std::atomic<std::uint64_t> vouched{0};  // taken from git's index, the file unread
        std::atomic<std::uint64_t> hashed{0};   // read and hashed
    };

    // `git` vouches for files of the source tree (GitIndex::load; an empty one for none).
    StampBook(VolumeTree& tree, const LowerLayer& lower, GitIndex git)
        : m_tree(tree), m_lower(lower), m_git(std::move(git)) {}

    // The mtime to show for the lower file or directory at `path`, whose lstat is `st`. Falls
    // back to the real mtime (and logs) if the content cannot be read.
    TimeNs shown_mtime(const std::string& path, const struct stat& st);
    const Counts& counts() const { return m_counts; }

private:
    struct Seen {
        FileIdentity file;
        TimeNs shown;
    };
    // The identity of what `path` holds (see LowerStamp::content).
    Result<ObjectId> content_hash(const std::string& path, const struct stat& st);
    Result<TimeNs> decide(const std::string& path, const struct stat& st);

    VolumeTree& m_tree;
    const LowerLayer& m_lower;
    const GitIndex m_git;
    Counts m_counts;
    Mutex m_mutex;
    std::unordered_map<std::string, Seen> m_seen GUARDED_BY(m_mutex);
};

}  // namespace fbfs
