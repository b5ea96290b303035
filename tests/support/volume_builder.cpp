#include "tests/support/volume_builder.h"

#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/must.h"

namespace fbfs::test {

VolumeBuilder::VolumeBuilder(const std::filesystem::path& root, const std::string& name)
    : m_store(must(Store::open(root, Store::Mode::create_if_missing))),
      m_tree(must(VolumeTree::open(*m_store, name, ::geteuid(), ::getegid()))) {}

InodeNumber VolumeBuilder::add(InodeNumber parent, const std::string& entry, std::uint32_t mode,
                               const std::string& content) {
    InodeRecord r;
    r.mode = mode;
    r.uid = ::geteuid();
    r.gid = ::getegid();
    r.mtime = 1'700'000'000'000'000'123;
    if (S_ISLNK(mode)) {
        r.symlink_target = content;
        r.size = content.size();
    } else if (!content.empty()) {
        r.object = must(m_store->pool().put_bytes(content)).id;
        r.size = content.size();
        m_objects.push_back(*r.object);
    }
    return must(m_tree.create(parent, entry, r)).ino;
}

}  // namespace fbfs::test
