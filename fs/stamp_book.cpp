#include "fs/stamp_book.h"

#include <spdlog/spdlog.h>

namespace fbfs {

bool StampBook::same_file(const Seen& seen, const struct stat& st) {
    return seen.dev == st.st_dev && seen.ino == st.st_ino && seen.size == st.st_size &&
           seen.mtime == to_ns(st.st_mtim) && seen.ctime == to_ns(st.st_ctim);
}

TimeNs StampBook::shown_mtime(const std::string& path, const struct stat& st) {
    {
        std::lock_guard lock(m_mutex);
        if (auto it = m_seen.find(path); it != m_seen.end() && same_file(it->second, st)) {
            return it->second.shown;
        }
    }
    auto shown = decide(path, st);
    if (!shown) {
        spdlog::warn("cannot stamp {}: {}", path, shown.error().message);
        return to_ns(st.st_mtim);
    }
    std::lock_guard lock(m_mutex);
    m_seen[path] =
        Seen{st.st_dev, st.st_ino, st.st_size, to_ns(st.st_mtim), to_ns(st.st_ctim), *shown};
    return *shown;
}

Result<ObjectId> StampBook::content_hash(const std::string& path, const struct stat& st) const {
    if (S_ISDIR(st.st_mode)) {
        auto entries = m_lower.list(path);
        if (!entries) {
            return std::unexpected(entries.error());
        }
        Sha256 hasher;
        for (const auto& entry : *entries) {
            hasher.update(entry.name.data(), entry.name.size() + 1);  // with its NUL
            hasher.update(&entry.type, 1);
        }
        return hasher.finish();
    }
    if (S_ISLNK(st.st_mode)) {
        auto target = m_lower.readlink(path);
        return target ? Result<ObjectId>(ObjectId::of(*target)) : std::unexpected(target.error());
    }
    auto fd = m_lower.open_file(path);
    if (!fd) {
        return std::unexpected(fd.error());
    }
    auto hashed = ObjectPool::hash_fd(fd->get());
    return hashed ? Result<ObjectId>(hashed->id) : std::unexpected(hashed.error());
}

Result<TimeNs> StampBook::decide(const std::string& path, const struct stat& st) {
    TimeNs real = to_ns(st.st_mtim);
    auto hash = content_hash(path, st);
    if (!hash) {
        return std::unexpected(hash.error());
    }
    auto size = static_cast<std::uint64_t>(st.st_size);
    auto recorded = m_tree.stamp(path);
    if (!recorded) {
        return std::unexpected(recorded.error());
    }
    if (*recorded && (*recorded)->sha256 == *hash && (*recorded)->size == size) {
        return (*recorded)->shown_mtime;
    }
    if (auto put = m_tree.put_stamp(path, LowerStamp{*hash, size, real}); !put) {
        return std::unexpected(put.error());
    }
    return real;
}

}  // namespace fbfs
