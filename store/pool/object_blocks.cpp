#include "store/pool/object_blocks.h"

namespace fbfs {

ObjectBlocks::Known ObjectBlocks::find(const ObjectId& id) const {
    LockGuard lock(m_mutex);
    auto found = m_blocks.find(id);
    if (found == m_blocks.end()) {
        return Known{false, std::nullopt, m_generation};
    }
    return Known{true, found->second, m_generation};
}

void ObjectBlocks::remember(const ObjectId& id, std::optional<std::uint64_t> blocks,
                            std::uint64_t generation) {
    LockGuard lock(m_mutex);
    if (generation != m_generation) {
        return;
    }
    if (m_blocks.size() >= k_max_objects) {
        m_blocks.clear();
    }
    m_blocks.insert_or_assign(id, blocks);
}

void ObjectBlocks::forget(const ObjectId& id) {
    LockGuard lock(m_mutex);
    m_blocks.erase(id);
    ++m_generation;
}

}  // namespace fbfs
