#include "fs/stamp_book.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>

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

void StampBook::warm(std::stop_token stop) {
    // Background work: yield the CPU and the disk to the build (these apply to this thread).
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10);
    constexpr int k_ioprio_class_idle = 3;
    ::syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, ::gettid(), k_ioprio_class_idle << 13);
    std::vector<std::string> dirs{""};
    while (!dirs.empty() && !stop.stop_requested()) {
        std::string dir = std::move(dirs.back());
        dirs.pop_back();
        auto entries = m_lower.list(dir);
        if (!entries) {
            continue;  // gone or unreadable: the build will hear about it when it looks
        }
        for (const auto& entry : *entries) {
            if (stop.stop_requested()) {
                return;
            }
            std::string path = join_path(dir, entry.name);
            auto st = m_lower.stat(path);
            if (!st || !(S_ISREG(st->st_mode) || S_ISDIR(st->st_mode))) {
                continue;
            }
            shown_mtime(path, *st);
            if (S_ISDIR(st->st_mode)) {
                dirs.push_back(std::move(path));
            }
        }
    }
}

}  // namespace fbfs
