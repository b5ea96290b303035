#include "store/meta/volume_snapshot.h"

#include <dirent.h>
#include <limits.h>

#include <algorithm>
#include <tuple>

#include "store/base/printable.h"

namespace fbfs {

namespace {

using ObjectSizes = std::unordered_map<ObjectId, std::uint64_t>;

std::unexpected<Error> bad(const VolumeSnapshot& s, const std::string& what) {
    return make_error(EINVAL, fmt::format("volume '{}': {}", printable(s.name), what));
}

// The shape the entries give the tree, gathered by check_entries() for the checks after it.
struct Shape {
    std::unordered_map<InodeNumber, std::uint32_t> links;    // entries naming each inode
    std::unordered_map<InodeNumber, std::uint32_t> subdirs;  // directories in each directory
    std::multimap<InodeNumber, InodeNumber> children;        // directory -> inodes it names
};

// ---- One inode, on its own ----------------------------------------------------------------

// An Error about inode `ino`: "volume 'v': inode 7 <what>".
std::unexpected<Error> bad_inode(const VolumeSnapshot& s, InodeNumber ino, std::string_view what) {
    return bad(s, fmt::format("inode {} {}", ino, what));
}

// Its mode holds a type and permission bits only, and the type is one fbfs stores.
Result<void> check_file_type(const VolumeSnapshot& s, InodeNumber ino, const InodeRecord& r) {
    if ((r.mode & ~static_cast<std::uint32_t>(S_IFMT | 07777)) != 0) {
        return bad_inode(s, ino, fmt::format("has mode {:o}, which is no file mode", r.mode));
    }
    switch (r.mode & S_IFMT) {
        case S_IFREG:
        case S_IFDIR:
        case S_IFLNK:
        case S_IFIFO:
        case S_IFSOCK:
        case S_IFCHR:
        case S_IFBLK:
            return {};
        default:
            return bad_inode(
                s, ino,
                fmt::format("has file type {:o}, which fbfs does not know", r.mode & S_IFMT));
    }
}

// Only a directory has flags, and only the known one (opaque).
Result<void> check_flags(const VolumeSnapshot& s, InodeNumber ino, const InodeRecord& r) {
    if ((r.flags & ~static_cast<std::uint32_t>(InodeRecord::k_opaque)) != 0 ||
        (r.flags != 0 && !r.is_dir())) {
        return bad_inode(s, ino, fmt::format("has unknown flags {:#x}", r.flags));
    }
    return {};
}

// Only a regular file names an object, which the pack holds, with as many bytes as the file.
Result<void> check_content(const VolumeSnapshot& s, InodeNumber ino, const InodeRecord& r,
                           const ObjectSizes& object_sizes) {
    if (!r.object) {
        if (r.is_reg() && r.size != 0) {
            return bad_inode(s, ino, fmt::format("has size {} but no object", r.size));
        }
        return {};
    }
    if (!r.is_reg()) {
        return bad_inode(s, ino, "is not a regular file but names an object");
    }
    auto size = object_sizes.find(*r.object);
    if (size == object_sizes.end()) {
        return bad_inode(s, ino, fmt::format("names object {}, which is missing", r.object->hex()));
    }
    if (size->second != r.size) {
        return bad_inode(s, ino,
                         fmt::format("has size {} but its object {} has {} bytes", r.size,
                                     r.object->hex(), size->second));
    }
    return {};
}

// Only a symlink has a target: 1..PATH_MAX-1 bytes with no NUL, its length the inode's size.
Result<void> check_symlink(const VolumeSnapshot& s, InodeNumber ino, const InodeRecord& r) {
    if (!r.is_symlink()) {
        if (!r.symlink_target.empty()) {
            return bad_inode(s, ino, "is not a symlink but has a target");
        }
        return {};
    }
    if (r.symlink_target.empty() || r.symlink_target.size() >= PATH_MAX ||
        r.symlink_target.find('\0') != std::string::npos) {
        return bad_inode(s, ino, "is a symlink whose target is empty, too long or holds a NUL");
    }
    if (r.size != r.symlink_target.size()) {
        return bad_inode(s, ino, "is a symlink whose size is not its target's length");
    }
    return {};
}

// Everything about one inode that does not depend on the others.
Result<void> check_inode(const VolumeSnapshot& s, InodeNumber ino, const InodeRecord& r,
                         const ObjectSizes& object_sizes) {
    if (ino == 0) {
        return bad(s, "has an inode numbered 0");
    }
    TRY(check_file_type(s, ino, r));
    TRY(check_flags(s, ino, r));
    if (r.nlink == 0) {
        return bad_inode(s, ino, "has no links");
    }
    TRY(check_content(s, ino, r, object_sizes));
    return check_symlink(s, ino, r);
}

// A volume's own inode numbers are below its next inode (lower-layer numbers, with the top bit
// set, are not counted out by it).
Result<void> check_inode_number(const VolumeSnapshot& s, InodeNumber ino) {
    if (ino < (InodeNumber{1} << 63) && ino >= s.next_inode) {
        return bad(s,
                   fmt::format("inode {} is beyond the volume's next inode {}", ino, s.next_inode));
    }
    return {};
}

// ---- The volume as a whole ----------------------------------------------------------------

Result<void> check_root(const VolumeSnapshot& s) {
    auto root = s.inodes.find(k_root_inode);
    if (root == s.inodes.end() || !root->second.is_dir()) {
        return bad(s, "has no root directory");
    }
    return {};
}

Result<void> check_inodes(const VolumeSnapshot& s, const ObjectSizes& object_sizes) {
    for (const auto& [ino, record] : s.inodes) {
        TRY(check_inode(s, ino, record, object_sizes));
        TRY(check_inode_number(s, ino));
    }
    return {};
}

// ---- One directory entry ------------------------------------------------------------------

// It is in a directory, under a name that is one path component, after the entry before it in
// (parent, name) order.
Result<void> check_entry_place(const VolumeSnapshot& s, const SnapshotEntry& e,
                               const SnapshotEntry* previous) {
    auto parent = s.inodes.find(e.parent);
    if (parent == s.inodes.end() || !parent->second.is_dir()) {
        return bad(s, fmt::format("an entry is in inode {}, which is no directory", e.parent));
    }
    if (!is_entry_name(e.name)) {
        return bad(s, fmt::format("directory inode {} has an entry named \"{}\", which is "
                                  "not a file name",
                                  e.parent, printable(e.name)));
    }
    if (previous && std::tie(e.parent, e.name) <= std::tie(previous->parent, previous->name)) {
        return bad(s, fmt::format("directory inode {} names \"{}\" twice or out of order", e.parent,
                                  printable(e.name)));
    }
    return {};
}

// A whiteout names no inode.
Result<void> check_whiteout(const VolumeSnapshot& s, const SnapshotEntry& e) {
    if (e.value.ino != 0) {
        return bad(s,
                   fmt::format("whiteout \"{}\" names inode {}", printable(e.name), e.value.ino));
    }
    return {};
}

// Any other entry names an inode of the volume other than the root, with that inode's type.
Result<void> check_entry_target(const VolumeSnapshot& s, const SnapshotEntry& e) {
    auto child = s.inodes.find(e.value.ino);
    if (child == s.inodes.end() || e.value.ino == k_root_inode) {
        return bad(s, fmt::format("entry \"{}\" names inode {}, which it cannot", printable(e.name),
                                  e.value.ino));
    }
    if (e.value.type != IFTODT(child->second.mode)) {
        return bad(s, fmt::format("entry \"{}\" has the wrong file type", printable(e.name)));
    }
    return {};
}

// Checks every entry on its own, and gathers the shape they give the tree.
Result<Shape> check_entries(const VolumeSnapshot& s) {
    Shape shape;
    const SnapshotEntry* previous = nullptr;
    for (const auto& e : s.entries) {
        TRY(check_entry_place(s, e, previous));
        previous = &e;
        if (e.value.is_whiteout()) {
            TRY(check_whiteout(s, e));
            continue;
        }
        TRY(check_entry_target(s, e));
        ++shape.links[e.value.ino];
        if (s.inodes.at(e.value.ino).is_dir()) {
            ++shape.subdirs[e.parent];
        }
        shape.children.emplace(e.parent, e.value.ino);
    }
    return shape;
}

// ---- The tree the entries make ------------------------------------------------------------

// A directory is named once (the root never) and has 2 + its subdirectories as link count;
// anything else is named as often as its link count says.
Result<void> check_link_counts(const VolumeSnapshot& s, Shape& shape) {
    for (const auto& [ino, record] : s.inodes) {
        std::uint32_t want = record.is_dir() ? 2 + shape.subdirs[ino] : shape.links[ino];
        std::uint32_t named = record.is_dir() ? (ino == k_root_inode ? 0 : 1) : record.nlink;
        if (record.nlink != want || (record.is_dir() && shape.links[ino] != named)) {
            return bad(s, fmt::format("inode {} has link count {}, which its {} entries do not "
                                      "add up to",
                                      ino, record.nlink, shape.links[ino]));
        }
    }
    return {};
}

// Every inode can be reached from the root. With every directory named once (checked before),
// this also rules out loops: a directory in a loop is named from inside it only.
Result<void> check_reachable(const VolumeSnapshot& s, Shape& shape) {
    std::vector<InodeNumber> todo{k_root_inode};
    std::size_t reached = 0;
    while (!todo.empty()) {
        InodeNumber dir = todo.back();
        todo.pop_back();
        ++reached;
        for (auto [it, end] = shape.children.equal_range(dir); it != end; ++it) {
            if (s.inodes.at(it->second).is_dir()) {
                todo.push_back(it->second);
            } else if (--shape.links[it->second] == 0) {
                ++reached;
            }
        }
    }
    if (reached != s.inodes.size()) {
        return bad(s, "has inodes that cannot be reached from its root");
    }
    return {};
}

// ---- Lower-file stamps --------------------------------------------------------------------

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

// Every stamp's path is relative and made of file names, and the stamps are in path order.
Result<void> check_stamps(const VolumeSnapshot& s) {
    std::string_view previous;
    for (const auto& stamp : s.stamps) {
        if (!is_relative_path(stamp.path)) {
            return bad(s, fmt::format("a stamp has the path \"{}\", which is not relative",
                                      printable(stamp.path)));
        }
        if (!previous.empty() && stamp.path <= previous) {
            return bad(s, fmt::format("stamps are out of order at \"{}\"", printable(stamp.path)));
        }
        previous = stamp.path;
    }
    return {};
}

// ---- Extended attributes ------------------------------------------------------------------

// An attribute is one a mount could have set: of an inode of the volume, under a name a volume
// stores (a `user.` one only on a regular file or directory), after the one before it in
// (inode, name) order.
Result<void> check_xattr(const VolumeSnapshot& s, const SnapshotXattr& x,
                         const SnapshotXattr* previous) {
    auto inode = s.inodes.find(x.ino);
    std::string_view name = x.xattr.name;
    std::string shown = printable(name);
    if (inode == s.inodes.end()) {
        return bad(
            s, fmt::format("attribute '{}' is of inode {}, which the volume lacks", shown, x.ino));
    }
    if (!is_stored_xattr_name(name)) {
        return bad_inode(s, x.ino,
                         fmt::format("has an attribute named '{}', which no mount stores", shown));
    }
    if (is_user_xattr_name(name) && !inode->second.is_reg() && !inode->second.is_dir()) {
        return bad_inode(
            s, x.ino, fmt::format("is no regular file or directory but has attribute '{}'", shown));
    }
    if (previous &&
        std::tie(x.ino, x.xattr.name) <= std::tie(previous->ino, previous->xattr.name)) {
        return bad_inode(s, x.ino, fmt::format("has attribute '{}' twice or out of order", shown));
    }
    return {};
}

// Every attribute on its own, and each inode's together within the room an inode has.
Result<void> check_xattrs(const VolumeSnapshot& s) {
    const SnapshotXattr* previous = nullptr;
    std::size_t used = 0;
    for (const auto& x : s.xattrs) {
        TRY(check_xattr(s, x, previous));
        used = (previous && previous->ino == x.ino ? used : 0) +
               xattr_cost(x.xattr.name, x.xattr.value.size());
        if (used > k_xattr_space) {
            return bad_inode(s, x.ino,
                             fmt::format("has attributes of more than the {} bytes an inode holds",
                                         k_xattr_space));
        }
        previous = &x;
    }
    return {};
}

}  // namespace

bool is_entry_name(std::string_view name) {
    return !name.empty() && name.size() <= NAME_MAX && name != "." && name != ".." &&
           name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

const SnapshotXattr* privileged_xattr(const VolumeSnapshot& snapshot) {
    auto found = std::find_if(snapshot.xattrs.begin(), snapshot.xattrs.end(),
                              [](const auto& x) { return is_privileged_xattr_name(x.xattr.name); });
    return found != snapshot.xattrs.end() ? &*found : nullptr;
}

std::uint64_t logical_bytes(const VolumeSnapshot& snapshot) {
    std::uint64_t total = 0;
    for (const auto& [ino, record] : snapshot.inodes) {
        total += record.is_reg() ? record.size : 0;
    }
    return total;
}

Result<void> check_snapshot(const VolumeSnapshot& s, const ObjectSizes& object_sizes) {
    TRY(check_volume_name(s.name));
    TRY(check_root(s));
    TRY(check_inodes(s, object_sizes));
    TRY_ASSIGN(auto shape, check_entries(s));
    TRY(check_link_counts(s, shape));
    TRY(check_reachable(s, shape));
    TRY(check_xattrs(s));
    return check_stamps(s);
}

}  // namespace fbfs
