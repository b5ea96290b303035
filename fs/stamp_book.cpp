#include "fs/stamp_book.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string_view>

namespace fbfs {

namespace {

// Git's object store (.git/objects: loose objects and packs of any size) is no build's input,
// and hashing a checkout's pack would cost more than the whole rest of the tree: its files show
// their real mtimes. HEAD, refs and the index, which version stamps read, keep stable ones.
bool in_git_object_store(std::string_view path) {
    for (std::string_view store : {".git/objects/", ".git/lfs/"}) {
        auto at = path.find(store);
        if (at != std::string_view::npos && (at == 0 || path[at - 1] == '/')) {
            return true;
        }
    }
    return false;
}

}  // namespace

TimeNs StampBook::shown_mtime(const std::string& path, const struct stat& st) {
    if (in_git_object_store(path)) {
        return to_ns(st.st_mtim);
    }
    {
        LockGuard lock(m_mutex);
        auto it = m_seen.find(path);
        if (it != m_seen.end() && it->second.file == FileIdentity::of(st)) {
            return it->second.shown;
        }
    }
    auto shown = decide(path, st);
    if (!shown) {
        spdlog::warn("cannot stamp {}: {}", path, shown.error().message);
        return to_ns(st.st_mtim);
    }
    LockGuard lock(m_mutex);
    m_seen[path] = Seen{FileIdentity::of(st), *shown};
    return *shown;
}

namespace {

// A git blob id as a stamp's content identity: its 20 bytes, then zeros.
ObjectId content_of(const GitBlobId& blob) {
    ObjectId::Bytes bytes{};
    std::copy(blob.begin(), blob.end(), bytes.begin());
    return ObjectId(bytes);
}

}  // namespace

Result<ObjectId> StampBook::content_hash(const std::string& path, const struct stat& st) {
    if (S_ISDIR(st.st_mode)) {
        TRY_ASSIGN(auto entries, m_lower.list(path));
        Sha256 hasher;
        for (const auto& entry : entries) {
            hasher.update(entry.name.data(), entry.name.size() + 1);  // with its NUL
            hasher.update(&entry.type, 1);
        }
        return hasher.finish();
    }
    if (S_ISLNK(st.st_mode)) {
        TRY_ASSIGN(auto target, m_lower.readlink(path));
        return content_of(git_blob_id(target));
    }
    if (auto blob = m_git.vouch(path, st)) {
        m_counts.vouched.fetch_add(1, std::memory_order_relaxed);
        return content_of(*blob);
    }
    TRY_ASSIGN(auto fd, m_lower.open_file(path));
    m_counts.hashed.fetch_add(1, std::memory_order_relaxed);
    TRY_ASSIGN(auto blob, git_blob_id(fd.get(), static_cast<std::uint64_t>(st.st_size)));
    return content_of(blob);
}

Result<TimeNs> StampBook::decide(const std::string& path, const struct stat& st) {
    TimeNs real = to_ns(st.st_mtim);
    TRY_ASSIGN(auto hash, content_hash(path, st));
    auto size = static_cast<std::uint64_t>(st.st_size);
    TRY_ASSIGN(auto recorded, m_tree.stamp(path));
    if (recorded && recorded->content == hash && recorded->size == size) {
        return recorded->shown_mtime;
    }
    TRY(m_tree.put_stamp(path, LowerStamp{hash, size, real}));
    return real;
}

}  // namespace fbfs
