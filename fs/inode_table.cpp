#include "fs/inode_table.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace fbfs {

void InodeTable::remember(InodeNumber ino, const std::string& path) {
    LockGuard lock(m_mutex);
    auto& entry = m_entries[ino];
    ++entry.lookups;
    if (!path.empty() && (entry.path.empty() || entry.hidden)) {
        entry.path = path;  // a hard link keeps the path it was first found at
        entry.hidden = false;
    }
}

std::optional<std::string> InodeTable::path_of(InodeNumber ino) const {
    LockGuard lock(m_mutex);
    auto it = m_entries.find(ino);
    if (it == m_entries.end() || it->second.hidden) {
        return std::nullopt;
    }
    return it->second.path;
}

std::vector<std::pair<InodeNumber, std::string>> InodeTable::known_paths() const {
    LockGuard lock(m_mutex);
    std::vector<std::pair<InodeNumber, std::string>> out;
    out.reserve(m_entries.size());
    for (const auto& [ino, entry] : m_entries) {
        if (entry.lookups > 0 && !entry.hidden && !entry.path.empty()) {
            out.emplace_back(ino, entry.path);
        }
    }
    return out;
}

void InodeTable::clear_path(InodeNumber ino) {
    LockGuard lock(m_mutex);
    if (auto it = m_entries.find(ino); it != m_entries.end()) {
        it->second.hidden = true;
    }
}

void InodeTable::set_path(InodeNumber ino, const std::string& path) {
    LockGuard lock(m_mutex);
    if (auto it = m_entries.find(ino); it != m_entries.end()) {
        it->second.path = path;
    }
}

bool InodeTable::forget(InodeNumber ino, std::uint64_t count) {
    LockGuard lock(m_mutex);
    auto it = m_entries.find(ino);
    std::uint64_t held = it == m_entries.end() ? 0 : it->second.lookups;
    if (held < count) {
        spdlog::critical("kernel forgot inode {} {} times but held it {} times", ino, count, held);
        std::abort();
    }
    it->second.lookups -= count;
    bool gone = it->second.lookups == 0;
    erase_if_unused(it);
    return gone;
}

std::uint64_t InodeTable::lookups(InodeNumber ino) const {
    LockGuard lock(m_mutex);
    auto it = m_entries.find(ino);
    return it == m_entries.end() ? 0 : it->second.lookups;
}

std::shared_ptr<OpenInode> InodeTable::find_open(InodeNumber ino) const {
    LockGuard lock(m_mutex);
    auto it = m_entries.find(ino);
    return it == m_entries.end() ? nullptr : it->second.open;
}

bool InodeTable::release(InodeNumber ino) {
    LockGuard lock(m_mutex);
    auto it = m_entries.find(ino);
    if (it == m_entries.end() || it->second.handles == 0) {
        spdlog::critical("released inode {} more often than it was opened", ino);
        std::abort();
    }
    if (--it->second.handles > 0) {
        return false;
    }
    it->second.open.reset();
    erase_if_unused(it);
    return true;
}

bool InodeTable::unused(InodeNumber ino) const {
    LockGuard lock(m_mutex);
    auto it = m_entries.find(ino);
    return it == m_entries.end() || (it->second.lookups == 0 && it->second.handles == 0);
}

void InodeTable::erase_if_unused(std::unordered_map<InodeNumber, Entry>::iterator it) {
    if (it->second.lookups == 0 && it->second.handles == 0) {
        m_entries.erase(it);
    }
}

}  // namespace fbfs
