// VolumeBuilder: a volume written straight into a store, with no mount, for tests that need a
// store holding given files (pack, push and pull). Each regular file's bytes go into the pool.
// Every failure fails the test (must()). Not thread-safe; the store stays open until it is
// destroyed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "store/base/object_id.h"
#include "store/meta/store.h"
#include "store/meta/volume_tree.h"

namespace fbfs::test {

class VolumeBuilder {
public:
    // Volume `name` of the store at `root`, each created if missing.
    VolumeBuilder(const std::filesystem::path& root, const std::string& name);

    // Adds `entry` in directory `parent`, owned by the caller's euid and egid, with a fixed
    // mtime: by the type bits of `mode`, a directory, a symlink to `content`, or a regular file
    // holding `content` (no object for an empty one). Returns its inode.
    InodeNumber add(InodeNumber parent, const std::string& entry, std::uint32_t mode,
                    const std::string& content = "");

    // The objects add() stored, one per non-empty regular file, in order.
    const std::vector<ObjectId>& objects() const { return m_objects; }
    VolumeTree& tree() { return m_tree; }

private:
    std::unique_ptr<Store> m_store;
    VolumeTree m_tree;
    std::vector<ObjectId> m_objects;
};

}  // namespace fbfs::test
