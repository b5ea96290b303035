#include "store/meta/volume_snapshot.h"

#include <dirent.h>
#include <limits.h>

#include <tuple>

namespace fbfs {

namespace {

std::unexpected<Error> bad(const VolumeSnapshot& s, const std::string& what) {
    return make_error(EINVAL, fmt::format("volume '{}': {}", s.name, what));
}

// Everything about one inode that does not depend on the others.
Result<void> check_inode(const VolumeSnapshot& s, InodeNumber ino, const InodeRecord& r,
                         const std::unordered_map<ObjectId, std::uint64_t>& object_sizes) {
    auto where = [&](std::string_view what) {
        return bad(s, fmt::format("inode {} {}", ino, what));
    };
    if (ino == 0) {
        return bad(s, "has an inode numbered 0");
    }
    if ((r.mode & ~static_cast<std::uint32_t>(S_IFMT | 07777)) != 0) {
        return where(fmt::format("has mode {:o}, which is no file mode", r.mode));
    }
    switch (r.mode & S_IFMT) {
        case S_IFREG:
        case S_IFDIR:
        case S_IFLNK:
        case S_IFIFO:
        case S_IFSOCK:
        case S_IFCHR:
        case S_IFBLK:
            break;
        default:
            return where(
                fmt::format("has file type {:o}, which fbfs does not know", r.mode & S_IFMT));
    }
    if ((r.flags & ~static_cast<std::uint32_t>(InodeRecord::k_opaque)) != 0 ||
        (r.flags != 0 && !r.is_dir())) {
        return where(fmt::format("has unknown flags {:#x}", r.flags));
    }
    if (r.nlink == 0) {
        return where("has no links");
    }
    if (r.object) {
        auto size = object_sizes.find(*r.object);
        if (!r.is_reg()) {
            return where("is not a regular file but names an object");
        }
        if (size == object_sizes.end()) {
            return where(fmt::format("names object {}, which is missing", r.object->hex()));
        }
        if (size->second != r.size) {
            return where(fmt::format("has size {} but its object {} has {} bytes", r.size,
                                     r.object->hex(), size->second));
        }
    } else if (r.is_reg() && r.size != 0) {
        return where(fmt::format("has size {} but no object", r.size));
    }
    if (r.is_symlink()) {
        if (r.symlink_target.empty() || r.symlink_target.size() >= PATH_MAX ||
            r.symlink_target.find('\0') != std::string::npos) {
            return where("is a symlink whose target is empty, too long or holds a NUL");
        }
        if (r.size != r.symlink_target.size()) {
            return where("is a symlink whose size is not its target's length");
        }
    } else if (!r.symlink_target.empty()) {
        return where("is not a symlink but has a target");
    }
    return {};
}

bool is_relative_path(std::string_view path) {
    if (path.empty()) {
        return false;
    }
    for (std::size_t start = 0; start <= path.size();) {
        std::size_t slash = std::min(path.find('/', start), path.size());
        if (!is_entry_name(path.substr(start, slash - start))) {
            return false;
        }
        start = slash + 1;
    }
    return true;
}

}  // namespace

bool is_entry_name(std::string_view name) {
    return !name.empty() && name.size() <= NAME_MAX && name != "." && name != ".." &&
           name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

std::uint64_t logical_bytes(const VolumeSnapshot& snapshot) {
    std::uint64_t total = 0;
    for (const auto& [ino, record] : snapshot.inodes) {
        total += record.is_reg() ? record.size : 0;
    }
    return total;
}

Result<void> check_snapshot(const VolumeSnapshot& s,
                            const std::unordered_map<ObjectId, std::uint64_t>& object_sizes) {
    if (auto named = check_volume_name(s.name); !named) {
        return std::unexpected(named.error());
    }
    auto root = s.inodes.find(k_root_inode);
    if (root == s.inodes.end() || !root->second.is_dir()) {
        return bad(s, "has no root directory");
    }
    for (const auto& [ino, record] : s.inodes) {
        if (auto ok = check_inode(s, ino, record, object_sizes); !ok) {
            return ok;
        }
        if (ino < (InodeNumber{1} << 63) && ino >= s.next_inode) {
            return bad(
                s, fmt::format("inode {} is beyond the volume's next inode {}", ino, s.next_inode));
        }
    }

    // Names, then the shape: every entry in a directory, every directory named once, every
    // other inode named as often as its link count says, everything reachable from the root.
    const SnapshotEntry* previous_entry = nullptr;
    std::unordered_map<InodeNumber, std::uint32_t> links;
    std::unordered_map<InodeNumber, std::uint32_t> subdirs;
    std::multimap<InodeNumber, InodeNumber> children;
    for (const auto& e : s.entries) {
        auto parent = s.inodes.find(e.parent);
        if (parent == s.inodes.end() || !parent->second.is_dir()) {
            return bad(s, fmt::format("an entry is in inode {}, which is no directory", e.parent));
        }
        if (!is_entry_name(e.name)) {
            return bad(s, fmt::format("directory inode {} has an entry named \"{}\", which is "
                                      "not a file name",
                                      e.parent, e.name.substr(0, e.name.find('\0'))));
        }
        if (previous_entry &&
            std::tie(e.parent, e.name) <= std::tie(previous_entry->parent, previous_entry->name)) {
            return bad(s, fmt::format("directory inode {} names \"{}\" twice or out of order",
                                      e.parent, e.name));
        }
        previous_entry = &e;
        if (e.value.is_whiteout()) {
            if (e.value.ino != 0) {
                return bad(s, fmt::format("whiteout \"{}\" names inode {}", e.name, e.value.ino));
            }
            continue;
        }
        auto child = s.inodes.find(e.value.ino);
        if (child == s.inodes.end() || e.value.ino == k_root_inode) {
            return bad(s, fmt::format("entry \"{}\" names inode {}, which it cannot", e.name,
                                      e.value.ino));
        }
        if (e.value.type != IFTODT(child->second.mode)) {
            return bad(s, fmt::format("entry \"{}\" has the wrong file type", e.name));
        }
        ++links[e.value.ino];
        if (child->second.is_dir()) {
            ++subdirs[e.parent];
        }
        children.emplace(e.parent, e.value.ino);
    }
    for (const auto& [ino, record] : s.inodes) {
        std::uint32_t want = record.is_dir() ? 2 + subdirs[ino] : links[ino];
        std::uint32_t named = record.is_dir() ? (ino == k_root_inode ? 0 : 1) : record.nlink;
        if (record.nlink != want || (record.is_dir() && links[ino] != named)) {
            return bad(s, fmt::format("inode {} has link count {}, which its {} entries do not "
                                      "add up to",
                                      ino, record.nlink, links[ino]));
        }
    }
    std::vector<InodeNumber> todo{k_root_inode};
    std::size_t reached = 0;
    while (!todo.empty()) {
        InodeNumber dir = todo.back();
        todo.pop_back();
        ++reached;
        for (auto [it, end] = children.equal_range(dir); it != end; ++it) {
            if (s.inodes.at(it->second).is_dir()) {
                todo.push_back(it->second);
            } else if (--links[it->second] == 0) {
                ++reached;
            }
        }
    }
    if (reached != s.inodes.size()) {
        return bad(s, "has inodes that cannot be reached from its root");
    }

    std::string_view previous;
    for (const auto& stamp : s.stamps) {
        if (!is_relative_path(stamp.path)) {
            return bad(s, fmt::format("a stamp has the path \"{}\", which is not relative",
                                      stamp.path.substr(0, stamp.path.find('\0'))));
        }
        if (!previous.empty() && stamp.path <= previous) {
            return bad(s, fmt::format("stamps are out of order at \"{}\"", stamp.path));
        }
        previous = stamp.path;
    }
    return {};
}

}  // namespace fbfs
