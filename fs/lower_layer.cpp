#include "fs/lower_layer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

namespace fbfs {

std::string join_path(const std::string& dir, std::string_view name) {
    return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

std::string parent_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<LowerLayer> LowerLayer::open(const std::filesystem::path& root) {
    UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
        int error = errno;
        if (error == ENOENT) {
            return make_error(ENOENT, fmt::format("source {} does not exist (give the checkout's "
                                                  "directory to --source)",
                                                  root.string()));
        }
        if (error == ENOTDIR) {
            return make_error(ENOTDIR, fmt::format("source {} is not a directory (give the "
                                                   "checkout's directory to --source)",
                                                   root.string()));
        }
        return sys_error(error, fmt::format("cannot open source {}", root.string()));
    }
    return LowerLayer(std::move(fd));
}

Result<struct stat> LowerLayer::stat(const std::string& path) const {
    struct stat st {};
    if (::fstatat(m_root.get(), relative(path), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return errno_error(fmt::format("source file {}", path.empty() ? "." : path));
    }
    return st;
}

Result<UniqueFd> LowerLayer::open_file(const std::string& path) const {
    UniqueFd fd(::openat(m_root.get(), relative(path), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
        return errno_error(fmt::format("cannot open source file {}", path));
    }
    return fd;
}

Result<std::string> LowerLayer::readlink(const std::string& path) const {
    std::string target(PATH_MAX, '\0');
    ssize_t n = ::readlinkat(m_root.get(), relative(path), target.data(), target.size());
    if (n < 0) {
        return errno_error(fmt::format("cannot read source symlink {}", path));
    }
    target.resize(static_cast<std::size_t>(n));
    return target;
}

Result<std::vector<LowerEntry>> LowerLayer::list(const std::string& path) const {
    // Each failure is reported before anything is cleaned up: closing the fd may change errno.
    UniqueFd fd(::openat(m_root.get(), relative(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
        return errno_error(fmt::format("cannot read source directory {}", path));
    }
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd.get()), ::closedir);
    if (!dir) {
        int error = errno;
        return sys_error(error, fmt::format("cannot read source directory {}", path));
    }
    fd.release();  // the DIR owns it now
    std::vector<LowerEntry> out;
    for (;;) {
        errno = 0;
        dirent* entry = ::readdir(dir.get());
        if (entry == nullptr) {
            if (int error = errno; error != 0) {
                // A partial listing would make entries vanish from the mount: fail instead.
                return sys_error(error, fmt::format("cannot read source directory {}", path));
            }
            break;
        }
        std::string_view name = entry->d_name;
        if (name != "." && name != "..") {
            out.push_back({std::string(name), entry->d_type});
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

Result<std::vector<Xattr>> LowerLayer::xattrs(const std::string& path) const {
    std::string where = proc_path(path);
    std::string names;
    for (int attempt = 0; attempt < 8; ++attempt) {  // the list may grow between the two calls
        ssize_t size = ::llistxattr(where.c_str(), nullptr, 0);
        if (size >= 0) {
            names.resize(static_cast<std::size_t>(size));
            size = ::llistxattr(where.c_str(), names.data(), names.size());
        }
        if (size >= 0) {
            names.resize(static_cast<std::size_t>(size));
            break;
        }
        if (errno == ENOTSUP) {
            return std::vector<Xattr>();
        }
        if (errno != ERANGE) {
            return errno_error(fmt::format("cannot list the attributes of source file {}", path));
        }
    }
    std::vector<Xattr> out;
    for (std::size_t at = 0; at < names.size();) {
        std::string name(names.c_str() + at);
        at += name.size() + 1;
        std::string value(k_xattr_space, '\0');
        ssize_t size = ::lgetxattr(where.c_str(), name.c_str(), value.data(), value.size());
        if (size < 0 && errno == ERANGE) {
            size = ::lgetxattr(where.c_str(), name.c_str(), nullptr, 0);
            value.resize(size > 0 ? static_cast<std::size_t>(size) : 0);
            size = ::lgetxattr(where.c_str(), name.c_str(), value.data(), value.size());
        }
        if (size < 0) {
            if (errno == ENODATA || errno == ERANGE) {
                continue;  // removed or changed meanwhile
            }
            return errno_error(
                fmt::format("cannot read attribute {} of source file {}", name, path));
        }
        value.resize(static_cast<std::size_t>(size));
        out.push_back({std::move(name), std::move(value)});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

std::string LowerLayer::proc_path(const std::string& path) const {
    // The root as "N/." rather than the magic link "N", so a caller's O_NOFOLLOW or
    // IN_DONT_FOLLOW applies to the directory, not to the link.
    return fmt::format("/proc/self/fd/{}/{}", m_root.get(), path.empty() ? "." : path);
}

}  // namespace fbfs
