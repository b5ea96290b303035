// Extended attributes of a mount: ext4's answers over the volume's `xattrs` table, and the source
// files' own attributes for an overlay's lower entries.
#include <linux/limits.h>
#include <spdlog/spdlog.h>
#include <sys/xattr.h>

#include <algorithm>
#include <atomic>

#include "fs/filesystem.h"

namespace fbfs {

namespace {

// The errors ext4 gives for a name before it looks at any inode: ERANGE past 255 bytes, EINVAL
// for a namespace prefix alone, EOPNOTSUPP for a namespace it has no handler for (and for
// `system.`, whose POSIX ACLs fbfs does not keep).
Result<void> check_name(std::string_view name) {
    if (name.size() > k_xattr_name_max) {
        return make_error(ERANGE,
                          fmt::format("attribute name longer than {} bytes", k_xattr_name_max));
    }
    if (is_stored_xattr_name(name)) {
        return {};
    }
    for (std::string_view prefix : {"user.", "trusted.", "security."}) {
        if (name == prefix) {
            return make_error(EINVAL, fmt::format("attribute name '{}' names no attribute", name));
        }
    }
    return make_error(EOPNOTSUPP, fmt::format("attributes named '{}' are not supported (fbfs "
                                              "keeps user., trusted. and security. ones)",
                                              name));
}

std::unexpected<Error> no_attribute(InodeNumber ino, std::string_view name) {
    return make_error(ENODATA, fmt::format("inode {} has no attribute '{}'", ino, name));
}

}  // namespace

std::vector<Xattr> Filesystem::lower_xattrs(const std::string& path, mode_t mode) const {
    static std::atomic<bool> warned{false};
    auto all = m_lower->xattrs(path);
    if (!all) {
        if (!warned.exchange(true)) {
            spdlog::warn("{}; its attributes are not shown", all.error().message);
        }
        return {};
    }
    std::vector<Xattr> kept;
    std::size_t used = 0;
    bool takes_user = S_ISREG(mode) || S_ISDIR(mode);
    for (auto& x : *all) {
        if (!is_stored_xattr_name(x.name) || (is_user_xattr_name(x.name) && !takes_user)) {
            continue;  // POSIX ACLs and the like: fbfs keeps none
        }
        used += xattr_cost(x.name, x.value.size());
        if (used > k_xattr_space) {
            if (!warned.exchange(true)) {
                spdlog::warn(
                    "source file {} has more attributes than an fbfs inode holds ({} "
                    "bytes); from '{}' on they are not shown",
                    path, k_xattr_space, x.name);
            }
            break;
        }
        kept.push_back(std::move(x));
    }
    return kept;
}

Result<std::vector<Xattr>> Filesystem::shown_xattrs(const Node& node) const {
    if (node.upper) {
        return m_tree.xattrs(node.ino);
    }
    return lower_xattrs(node.path, node.lower->st_mode);
}

Result<std::string> Filesystem::getxattr(InodeNumber ino, std::string_view name) {
    TRY(check_name(name));
    TRY_ASSIGN(auto node, resolve(ino));
    if (node.upper) {
        // The kernel asks this of security.capability before a file's first write: one read.
        TRY_ASSIGN(auto value, m_tree.xattr(ino, name));
        return value ? Result<std::string>(std::move(*value)) : no_attribute(ino, name);
    }
    for (auto& x : lower_xattrs(node.path, node.lower->st_mode)) {
        if (x.name == name) {
            return std::move(x.value);
        }
    }
    return no_attribute(ino, name);
}

Result<std::vector<std::string>> Filesystem::listxattr(InodeNumber ino, const Caller& caller) {
    TRY_ASSIGN(auto node, resolve(ino));
    TRY_ASSIGN(auto all, shown_xattrs(node));
    std::vector<std::string> names;
    for (auto& x : all) {
        if (caller.uid == 0 || !x.name.starts_with("trusted.")) {
            names.push_back(std::move(x.name));
        }
    }
    return names;
}

Result<void> Filesystem::setxattr(InodeNumber ino, std::string_view name, std::string_view value,
                                  int flags) {
    TRY(check_name(name));
    if (value.size() > XATTR_SIZE_MAX) {
        return make_error(E2BIG, "attribute value larger than 64 KiB");
    }
    if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
        return make_error(EINVAL, "unknown setxattr flags");
    }
    if ((flags & XATTR_CREATE) && (flags & XATTR_REPLACE)) {
        // Both: ext4 checks XATTR_CREATE first, so either answer is an error.
        auto present = getxattr(ino, name);
        if (!present && present.error().code != ENODATA) {
            return std::unexpected(present.error());
        }
        return present ? make_error(EEXIST, fmt::format("attribute '{}' exists", name))
                       : std::unexpected(present.error());
    }
    TRY(copy_up(ino));
    XattrMode mode = (flags & XATTR_CREATE)    ? XattrMode::create
                     : (flags & XATTR_REPLACE) ? XattrMode::replace
                                               : XattrMode::any;
    TRY_ASSIGN(auto written, m_tree.set_xattr(ino, name, value, mode));
    if (auto open = m_inodes.find_open(ino)) {
        open->set_times(std::nullopt, std::nullopt, written.ctime);
    }
    return {};
}

Result<void> Filesystem::removexattr(InodeNumber ino, std::string_view name) {
    TRY(check_name(name));
    TRY(getxattr(ino, name));  // nothing to copy up for
    TRY(copy_up(ino));
    TRY_ASSIGN(auto written, m_tree.remove_xattr(ino, name));
    if (auto open = m_inodes.find_open(ino)) {
        open->set_times(std::nullopt, std::nullopt, written.ctime);
    }
    return {};
}

}  // namespace fbfs
