// Extended attributes as a volume stores them: which names, and how much of them one inode holds.
//
// The rules follow ext4 with its default 4 KiB blocks and no `ea_inode` feature, so tools that
// copy attributes see the same outcomes: a name is one of the namespaces `user.`, `trusted.` or
// `security.` followed by at least one byte, at most 255 bytes in all, without NUL; one inode's
// attributes take at most 4096 bytes, each counting its name, its value and 16 bytes (ext4's entry
// header, rounded). A value can therefore be up to about 4 KiB, as on ext4 (the kernel itself
// refuses values over 64 KiB with E2BIG before fbfs sees them). `system.` names (POSIX ACLs) are
// not stored: see docs/ARCHITECTURE.md.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace fbfs {

inline constexpr std::size_t k_xattr_name_max = 255;
inline constexpr std::size_t k_xattr_entry_overhead = 16;
inline constexpr std::size_t k_xattr_space = 4096;  // per inode: names, values and overheads

// One attribute of an inode.
struct Xattr {
    std::string name;
    std::string value;
    bool operator==(const Xattr&) const = default;
};

// What setxattr(2)'s flags ask: XATTR_CREATE (EEXIST if present), XATTR_REPLACE (ENODATA if
// absent), or either.
enum class XattrMode { any, create, replace };

// The room one attribute takes of k_xattr_space.
inline std::size_t xattr_cost(std::string_view name, std::size_t value_size) {
    return name.size() + value_size + k_xattr_entry_overhead;
}

// True for names a volume stores (see above); the namespace prefix alone is not a name.
bool is_stored_xattr_name(std::string_view name);

// True for names in the `user.` namespace, which the kernel allows only on regular files and
// directories.
bool is_user_xattr_name(std::string_view name);

// True for names in the `trusted.` and `security.` namespaces, which on ext4 only a privileged
// caller sets (CAP_SYS_ADMIN; CAP_SETFCAP for security.capability): so only root unpacks them.
bool is_privileged_xattr_name(std::string_view name);

}  // namespace fbfs
