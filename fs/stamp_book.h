// StampBook: content-stable mtimes for the files and directories of an overlay's source tree.
//
// For each lower path the volume keeps a LowerStamp: the SHA-256 of its content (for a
// directory, of its sorted entry names and types), its size, and the mtime shown for it. While a
// path's content stays what was recorded, the mount shows the recorded mtime, whatever the real
// one is (a fresh checkout on another runner); new or changed content shows its real mtime, and
// that is recorded. Each path is hashed at most once per mount unless its real size, mtime,
// ctime or inode changes.
//
// Thread-safe. m_mutex guards m_seen; hashing and LMDB happen outside it, so two threads may
// hash one file at once, which is harmless.
#pragma once

#include <sys/stat.h>

#include <mutex>
#include <string>
#include <unordered_map>

#include "fs/lower_layer.h"
#include "store/schema.h"
#include "store/volume_tree.h"

namespace fbfs {

class StampBook {
public:
    StampBook(VolumeTree& tree, const LowerLayer& lower) : m_tree(tree), m_lower(lower) {}

    // The mtime to show for the lower file or directory at `path`, whose lstat is `st`. Falls
    // back to the real mtime (and logs) if the content cannot be read.
    TimeNs shown_mtime(const std::string& path, const struct stat& st);

private:
    struct Seen {
        dev_t dev;
        ino_t ino;
        off_t size;
        TimeNs mtime;
        TimeNs ctime;
        TimeNs shown;
    };
    static bool same_file(const Seen& seen, const struct stat& st);
    Result<ObjectId> content_hash(const std::string& path, const struct stat& st) const;
    Result<TimeNs> decide(const std::string& path, const struct stat& st);

    VolumeTree& m_tree;
    const LowerLayer& m_lower;
    std::mutex m_mutex;
    std::unordered_map<std::string, Seen> m_seen;
};

}  // namespace fbfs
