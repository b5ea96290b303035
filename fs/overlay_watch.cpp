// The overlay's side of SourceWatch: each change made straight in the source is pushed to the
// kernel as it happens, so lower entries, attributes and negative entries may be cached as long
// as upper ones, and an edit shows at once. Called on the watch's thread.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>

#include "fs/filesystem.h"

namespace fbfs {

InodeNumber Filesystem::dir_ino(const std::string& dir) const {
    // A copied-up directory keeps its lower number, so this is the number the kernel knows.
    return dir.empty() ? k_root_inode : lower_ino(dir, S_IFDIR);
}

void Filesystem::attach_kernel(KernelCache& kernel) {
    m_kernel = &kernel;
    if (!m_lower) {
        std::error_code ec;  // a status an earlier overlay mount of this volume left
        std::filesystem::remove(source_status_file(), ec);
        return;
    }
    write_source_status("being watched (first walk; lower entries cached for 1 s)");
    auto watch = SourceWatch::start(*m_lower, *this);
    if (!watch) {
        spdlog::warn("the source is not watched: {}; lower entries are cached for 1 s",
                     watch.error().message);
        write_source_status("not watched: " + watch.error().message);
        return;
    }
    m_watch = std::move(*watch);
}

void Filesystem::stop_watching() {
    m_watch.reset();  // joins its thread: no listener call after this
    m_kernel = nullptr;
}

std::filesystem::path Filesystem::source_status_file() const {
    return m_tree.store().root() / "log" / (m_tree.name() + ".source");
}

void Filesystem::write_source_status(const std::string& watch) {
    LockGuard lock(m_status_mutex);
    if (!watch.empty()) {
        m_watch_status = watch;
    }
    std::string line = m_watch_status;
    if (m_watch_status.starts_with("not")) {
        line += " (lower entries cached for 1 s)";
    }
    if (!m_warm_status.empty()) {
        line += "; " + m_warm_status;
    }
    std::error_code ec;
    std::filesystem::create_directories(source_status_file().parent_path(), ec);
    std::ofstream(source_status_file(), std::ios::trunc) << line << "\n";
}

void Filesystem::watching(bool active, const std::string& detail) {
    write_source_status(active ? "watched (" + detail + ")" : "not watched: " + detail);
}

void Filesystem::warmed_up(std::uint64_t directories, std::uint64_t entries, double seconds,
                           bool complete) {
    if (!m_lower) {
        return;
    }
    {
        LockGuard lock(m_status_mutex);
        m_warm_status = fmt::format(
            "warm-up {} {} directories, {} entries in {:.2f} s; {} files' content from git's "
            "index, {} hashed",
            complete ? "listed" : "stopped after", directories, entries, seconds,
            m_stamps->counts().vouched.load(), m_stamps->counts().hashed.load());
    }
    write_source_status("");
}

void Filesystem::entry_changed(const std::string& dir, std::string_view name) {
    InodeNumber parent = dir_ino(dir);
    {
        LockGuard lock(m_negatives_mutex);
        m_negatives.erase({parent, std::string(name)});
    }
    // The directory's cached listing, mtime and link count first: once the entry is gone from
    // the kernel, a listing must not show it either.
    m_kernel->forget_inode(parent);
    m_kernel->forget_entry(parent, name);
    // What now has the name may have a number the kernel knows, with stale attributes or a
    // stale symlink target (`ln -sf` replaces a symlink by one of the same number).
    std::string path = join_path(dir, name);
    if (auto st = m_lower->stat(path)) {
        m_kernel->forget_inode(lower_ino(path, st->st_mode));
    }
}

void Filesystem::content_changed(const std::string& path) {
    auto st = m_lower->stat(path);
    if (st) {  // else it went, and its entry's change says so
        m_kernel->forget_inode(path.empty() ? k_root_inode : lower_ino(path, st->st_mode));
    }
}

void Filesystem::everything_changed() {
    std::set<std::pair<InodeNumber, std::string>> negatives;
    {
        LockGuard lock(m_negatives_mutex);
        negatives.swap(m_negatives);
    }
    for (const auto& [parent, name] : negatives) {
        m_kernel->forget_entry(parent, name);
    }
    for (const auto& [ino, path] : m_inodes.known_paths()) {
        m_kernel->forget_inode(ino);
        m_kernel->forget_entry(dir_ino(parent_of(path)), base_of(path));
    }
    m_kernel->forget_inode(k_root_inode);
}

}  // namespace fbfs
