// The overlay half of Filesystem: resolving inodes over both layers, merged directories,
// copy-up, and what the kernel may cache of lower entries.
#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "fs/filesystem.h"

namespace fbfs {

namespace {

// Lower entries change behind the mount's back (an editor, git checkout): while the source is
// not watched, the kernel re-asks after this long.
constexpr double k_lower_timeout = 1.0;
constexpr double k_upper_timeout = 86400.0;
// How many negative entries an overlay remembers to take back after lost source events.
constexpr std::size_t k_max_negatives = 1'000'000;
// Inode numbers derived from lower paths have the top bit set; the volume's own counter never
// gets there.
constexpr InodeNumber k_lower_ino_bit = InodeNumber{1} << 63;

// Copies a lower file into a new file in the pool's tmp/ and seals it (hash, read-only). Named
// as volume `volume`'s staging files are, so a killed daemon's leftovers go at the next mount.
Result<PutResult> stage_copy(const ObjectPool& pool, VolumeId volume, int from,
                             std::filesystem::path& staged) {
    TRY_ASSIGN(auto copy, pool.copy_to_temp(from, fmt::format("staging-{}-up-", volume)));
    staged = copy.path;
    auto sealed = pool.seal(staged);
    if (!sealed) {
        ::unlink(staged.c_str());
    }
    return sealed;
}

}  // namespace

InodeNumber Filesystem::lower_ino(const std::string& path, mode_t mode) {
    // FNV-1a: stable across runs and machines, so a lower file keeps its number everywhere.
    std::uint64_t hash = 0xcbf29ce484222325ull;
    for (char c : path) {
        hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    }
    // A path that changes type (a file replaced by a directory) is another inode to the kernel,
    // as it would be natively: the kernel refuses an inode whose type changes. Directories keep
    // the bare hash, which directories copied up by earlier versions carry in the volume.
    if (!S_ISDIR(mode)) {
        hash ^= static_cast<std::uint64_t>((mode & S_IFMT) >> 12) * 0x9e3779b97f4a7c15ull;
    }
    return k_lower_ino_bit | (hash & ~k_lower_ino_bit);
}

double Filesystem::cache_timeout(InodeNumber ino) const {
    bool lower = m_lower && ((ino & k_lower_ino_bit) || ino == k_root_inode);
    return lower && !source_watched() ? k_lower_timeout : k_upper_timeout;
}

double Filesystem::negative_timeout(InodeNumber parent, std::string_view name) {
    if (!m_lower) {
        return k_upper_timeout;
    }
    if (!source_watched()) {
        return k_lower_timeout;
    }
    LockGuard lock(m_negatives_mutex);
    if (m_negatives.size() >= k_max_negatives) {
        return k_lower_timeout;  // too many to take back one by one: let them expire
    }
    m_negatives.emplace(parent, name);
    return k_upper_timeout;
}

std::string Filesystem::child_path(InodeNumber parent, std::string_view name) const {
    if (!m_lower) {
        return {};
    }
    auto dir = parent == k_root_inode ? std::optional<std::string>("") : m_inodes.path_of(parent);
    return join_path(dir.value_or(""), name);
}

Result<Filesystem::Node> Filesystem::resolve(InodeNumber ino) const {
    Node node{ino, {}, {}, {}};
    auto upper = record(ino);
    if (upper) {
        node.upper = std::move(*upper);
    } else if (upper.error().code != ENOENT) {
        return std::unexpected(upper.error());
    }
    if (m_lower &&
        (!node.upper || (node.upper->is_dir() && !(node.upper->flags & InodeRecord::k_opaque)))) {
        auto path = ino == k_root_inode ? std::optional<std::string>("") : m_inodes.path_of(ino);
        if (path) {
            node.path = *path;
            auto st = m_lower->stat(node.path);
            if (!st && st.error().code != ENOENT && st.error().code != ENOTDIR &&
                !m_warned_unreadable.exchange(true)) {
                spdlog::warn("cannot read the source: {}; what it holds there is not shown",
                             st.error().message);
            }
            // A path that changed type since the kernel took this number is another inode now.
            if (st &&
                (node.upper || ino == k_root_inode || lower_ino(node.path, st->st_mode) == ino)) {
                node.lower = *st;
            }
        }
    } else if (m_lower) {
        node.path = m_inodes.path_of(ino).value_or("");
    }
    if (!node.upper && !node.lower) {
        return make_error(ENOENT, fmt::format("inode {} does not exist", ino));
    }
    return node;
}

Result<struct stat> Filesystem::attr(const Node& node) {
    if (node.upper) {
        struct stat st = to_stat(node.ino, *node.upper);
        if (merges_lower(node)) {
            TRY_ASSIGN(auto below, lower_subdirs_shown(node));
            st.st_nlink += static_cast<nlink_t>(below);
        }
        return st;
    }
    struct stat st = *node.lower;
    st.st_ino = node.ino;
    st.st_dev = 0;
    if (!S_ISDIR(st.st_mode)) {
        st.st_nlink = 1;  // other names of a lower file are other inodes here
    }
    st.st_mtim = to_timespec(m_stamps->shown_mtime(node.path, *node.lower));
    return st;
}

bool Filesystem::counts_subdirs(const LowerLayer& lower) {
    auto root = lower.stat("");
    auto entries = lower.list("");
    if (!root || !entries) {
        return false;
    }
    auto subdirs = std::count_if(entries->begin(), entries->end(),
                                 [](const LowerEntry& e) { return e.type == DT_DIR; });
    return root->st_nlink == 2 + static_cast<nlink_t>(subdirs);
}

Result<std::size_t> Filesystem::lower_subdirs_shown(const Node& dir) const {
    // The volume's record counts the subdirectories it holds (nlink is 2 + those); a merged
    // directory also shows the lower ones that no volume entry (directory, whiteout, or another
    // file) covers, and ext4 would count every one. A getattr of a merged directory follows
    // every change in it, so this is kept cheap: nothing for a lower directory without
    // subdirectories, else one listing of it and a lookup per lower subdirectory.
    if (m_lower_counts_subdirs && dir.lower->st_nlink == 2) {
        return 0;
    }
    TRY_ASSIGN(auto entries, m_lower->list(dir.path));
    std::size_t shown = 0;
    for (const auto& e : entries) {
        if (e.type != DT_DIR && e.type != DT_UNKNOWN) {
            continue;
        }
        if (e.type == DT_UNKNOWN) {
            auto st = m_lower->stat(join_path(dir.path, e.name));
            if (!st || !S_ISDIR(st->st_mode)) {
                continue;
            }
        }
        TRY_ASSIGN(auto covering, m_tree.lookup(dir.ino, e.name));
        shown += covering ? 0 : 1;
    }
    return shown;
}

bool Filesystem::merges_lower(const Node& dir) const {
    return dir.lower && S_ISDIR(dir.lower->st_mode) &&
           !(dir.upper && (dir.upper->flags & InodeRecord::k_opaque));
}

std::optional<struct stat> Filesystem::lower_child(const Node& dir, std::string_view name) const {
    if (!merges_lower(dir)) {
        return std::nullopt;
    }
    auto st = m_lower->stat(join_path(dir.path, name));
    return st ? std::optional<struct stat>(*st) : std::nullopt;
}

Result<void> Filesystem::check_free(const Node& dir, std::string_view name) const {
    if (!lower_child(dir, name)) {
        return {};
    }
    // A lower entry shows unless a volume entry (a whiteout, or a file) covers the name.
    TRY_ASSIGN(auto covering, m_tree.lookup(dir.ino, name));
    if (!covering) {
        return make_error(EEXIST, fmt::format("'{}' exists", name));
    }
    return {};
}

Result<std::vector<DirHandle::Entry>> Filesystem::merged_entries(const Node& dir) const {
    std::vector<DirHandle::Entry> out;
    std::set<std::string> upper_names;
    if (dir.upper) {
        TRY_ASSIGN(auto entries, m_tree.list(dir.ino));
        for (auto& e : entries) {
            upper_names.insert(e.name);
            if (!e.value.is_whiteout()) {
                out.push_back({std::move(e.name), e.value.ino, e.value.type});
            }
        }
    }
    if (merges_lower(dir)) {
        TRY_ASSIGN(auto entries, m_lower->list(dir.path));
        for (auto& e : entries) {
            if (!upper_names.contains(e.name)) {
                std::string path = join_path(dir.path, e.name);
                mode_t mode = DTTOIF(e.type);
                if (e.type == DT_UNKNOWN) {
                    auto st = m_lower->stat(path);
                    mode = st ? st->st_mode : S_IFREG;
                }
                InodeNumber ino = lower_ino(path, mode);
                out.push_back({std::move(e.name), ino, static_cast<std::uint8_t>(IFTODT(mode))});
            }
        }
    }
    return out;
}

Result<void> Filesystem::check_empty(const Node& dir) const {
    TRY_ASSIGN(auto entries, merged_entries(dir));
    if (!entries.empty()) {
        return make_error(ENOTEMPTY, fmt::format("directory {} is not empty", dir.path));
    }
    return {};
}

Result<InodeNumber> Filesystem::upper_dir(const std::string& path) {
    if (path.empty()) {
        return k_root_inode;
    }
    auto parent = upper_dir(parent_of(path));
    if (!parent) {
        return parent;
    }
    std::string name = base_of(path);
    TRY_ASSIGN(auto entry, m_tree.lookup(*parent, name));
    if (entry && !entry->is_whiteout()) {
        return entry->ino;
    }
    auto st = m_lower->stat(path);
    if (entry || !st || !S_ISDIR(st->st_mode)) {
        return make_error(ENOENT, fmt::format("directory {} is gone", path));
    }
    InodeRecord r;
    r.mode = st->st_mode;
    r.uid = st->st_uid;
    r.gid = st->st_gid;
    r.atime = to_ns(st->st_atim);
    r.mtime = m_stamps->shown_mtime(path, *st);
    r.ctime = to_ns(st->st_ctim);
    VolumeTree::CreateOptions options;
    options.ino = lower_ino(path, S_IFDIR);
    options.touch_parent = false;
    options.xattrs = lower_xattrs(path, st->st_mode);
    auto made = m_tree.create(*parent, name, std::move(r), options);
    if (!made && made.error().code == EEXIST) {
        return upper_dir(path);  // another thread copied it up first
    }
    TRY(made);
    return made->ino;
}

Result<void> Filesystem::copy_up(InodeNumber ino) {
    TRY_ASSIGN(auto node, resolve(ino));
    if (node.upper) {
        return {};
    }
    if (S_ISDIR(node.lower->st_mode)) {
        TRY(upper_dir(node.path));
        return {};
    }
    TRY_ASSIGN(auto parent, upper_dir(parent_of(node.path)));
    const struct stat& st = *node.lower;
    InodeRecord r;
    r.mode = st.st_mode;
    r.uid = st.st_uid;
    r.gid = st.st_gid;
    r.rdev = st.st_rdev;
    r.atime = to_ns(st.st_atim);
    r.mtime = m_stamps->shown_mtime(node.path, st);
    r.ctime = to_ns(st.st_ctim);
    VolumeTree::CreateOptions options;
    options.ino = ino;
    options.touch_parent = false;
    options.xattrs = lower_xattrs(node.path, st.st_mode);
    if (S_ISLNK(st.st_mode)) {
        TRY_ASSIGN(auto target, m_lower->readlink(node.path));
        r.symlink_target = target;
        r.size = target.size();
    } else if (S_ISREG(st.st_mode)) {
        TRY_ASSIGN(auto from, m_lower->open_file(node.path));
        TRY_ASSIGN(auto sealed, stage_copy(pool(), m_tree.id(), from.get(), options.sealed));
        r.size = sealed.size;
        if (sealed.size > 0) {
            r.object = sealed.id;
        }
    }
    auto made = m_tree.create(parent, base_of(node.path), std::move(r), options);
    if (!options.sealed.empty()) {
        ::unlink(options.sealed.c_str());  // an empty file, or a failed create
    }
    if (!made) {
        // Another thread may have copied it up first; then it has a record now.
        auto again = resolve(ino);
        return again && again->upper ? Result<void>() : std::unexpected(made.error());
    }
    return {};
}

Result<std::unique_ptr<FileHandle>> Filesystem::open_lower(const Node& node) {
    TRY_ASSIGN(auto fd, m_lower->open_file(node.path));
    auto handle = std::make_unique<FileHandle>();
    handle->ino = node.ino;
    handle->lower = std::make_shared<UniqueFd>(std::move(fd));
    // The kernel's cached pages are right only if the file did not change since it last opened.
    FileIdentity now = FileIdentity::of(*node.lower);
    LockGuard lock(m_lower_mutex);
    auto [it, inserted] = m_lower_opened.try_emplace(node.ino, now);
    handle->keep_cache = !inserted && it->second == now;
    it->second = now;
    return handle;
}

Result<Filesystem::RenamePlan> Filesystem::prepare_rename(InodeNumber parent, std::string_view name,
                                                          InodeNumber new_parent,
                                                          std::string_view new_name,
                                                          unsigned flags) {
    // One side of the rename: what the volume has under the name, and what shows from below.
    struct Side {
        std::optional<DirentValue> upper;
        bool whiteout = false;
        std::optional<struct stat> lower;
        std::string path;
        InodeNumber ino() const {
            return upper ? upper->ino : lower_ino(path, lower ? lower->st_mode : S_IFREG);
        }
        bool exists() const { return upper || (lower && !whiteout); }
    };
    auto side_of = [&](InodeNumber dir, std::string_view entry) -> Result<Side> {
        TRY_ASSIGN(auto node, resolve(dir));
        Side side;
        side.path = child_path(dir, entry);
        if (node.upper) {
            TRY_ASSIGN(auto found, m_tree.lookup(dir, entry));
            side.whiteout = found && found->is_whiteout();
            if (found && !side.whiteout) {
                side.upper = *found;
            }
        }
        side.lower = lower_child(node, entry);
        return side;
    };
    auto src = side_of(parent, name);
    TRY_ASSIGN(auto dst, src ? side_of(new_parent, new_name) : src);
    if (!src->exists()) {
        return make_error(ENOENT, fmt::format("no entry '{}'", name));
    }
    TRY_ASSIGN(auto src_node, resolve(src->ino()));
    bool src_dir = src_node.is_dir();
    // A directory with lower entries cannot move: they stay at their path (overlayfs says
    // EXDEV too, and mv falls back to copying).
    if (src_dir && src_node.lower) {
        return make_error(EXDEV,
                          fmt::format("cannot move directory {} of the source tree", src->path));
    }
    RenamePlan plan;
    plan.moved = src->ino();
    plan.opaque = src_dir;
    plan.whiteout_source = src->lower.has_value() && !(flags & RENAME_EXCHANGE);
    if (dst.exists()) {
        Node dst_node{dst.ino(), dst.path, {}, dst.lower};
        if (dst.upper) {
            TRY_ASSIGN(auto resolved, resolve(dst.ino()));
            dst_node = resolved;
        }
        bool dst_dir = dst_node.is_dir();
        if (flags & RENAME_NOREPLACE) {
            return make_error(EEXIST, fmt::format("'{}' exists", new_name));
        }
        if (flags & RENAME_EXCHANGE) {
            if (dst_dir && dst_node.lower) {
                return make_error(EXDEV, fmt::format("cannot move directory {} of the source "
                                                     "tree",
                                                     dst.path));
            }
            TRY(copy_up(dst.ino()));
            plan.exchanged = dst.ino();
        } else if (src_dir != dst_dir) {
            return make_error(src_dir ? ENOTDIR : EISDIR,
                              fmt::format("'{}' and '{}' differ in type", name, new_name));
        } else if (dst_dir && dst_node.lower &&
                   !(dst_node.upper && (dst_node.upper->flags & InodeRecord::k_opaque))) {
            TRY(check_empty(dst_node));
        }
    } else if (flags & RENAME_EXCHANGE) {
        return make_error(ENOENT, fmt::format("no entry '{}' to exchange", new_name));
    }
    for (InodeNumber ino : {src->ino(), parent, new_parent}) {
        TRY(copy_up(ino));
    }
    return plan;
}

void Filesystem::finish_rename(const RenamePlan& plan, InodeNumber parent, std::string_view name,
                               InodeNumber new_parent, std::string_view new_name) {
    std::string old_path = child_path(parent, name);
    m_inodes.set_path(plan.moved, child_path(new_parent, new_name));
    if (plan.exchanged) {
        m_inodes.set_path(plan.exchanged, old_path);
    }
}

}  // namespace fbfs
