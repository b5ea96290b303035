// LowerLayer: the source tree under an overlay mount, read-only, addressed by paths relative to
// its root ("" is the root itself, "src/a.c" a file below it).
//
// fbfs never writes here. Every access goes through one directory fd opened at mount time, so
// the source's absolute path is used once and recorded nowhere. Paths come from names the
// kernel looked up, one directory at a time, so they hold no "." or ".." components.
// Thread-safe: it holds only the directory fd.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "store/base/error.h"
#include "store/base/unique_fd.h"
#include "store/meta/schema.h"
#include "store/meta/xattr.h"

namespace fbfs {

// What tells one version of a source file from another without reading it: its (dev, ino,
// size, mtime, ctime). Equal identities mean the same bytes, unless someone forged the times.
struct FileIdentity {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    TimeNs mtime = 0;
    TimeNs ctime = 0;

    static FileIdentity of(const struct stat& st) {
        return {st.st_dev, st.st_ino, st.st_size, to_ns(st.st_mtim), to_ns(st.st_ctim)};
    }
    bool operator==(const FileIdentity&) const = default;
};

struct LowerEntry {
    std::string name;
    std::uint8_t type = 0;  // DT_*
};

class LowerLayer {
public:
    // Opens `root`; an Error that names it if it is missing or not a directory.
    static Result<LowerLayer> open(const std::filesystem::path& root);

    // lstat of `path`; ENOENT (or ENOTDIR) when it is not there.
    Result<struct stat> stat(const std::string& path) const;
    bool exists(const std::string& path) const { return stat(path).has_value(); }
    // Opens a regular file O_RDONLY.
    Result<UniqueFd> open_file(const std::string& path) const;
    Result<std::string> readlink(const std::string& path) const;
    // The entries of a directory, without "." and "..", in name order.
    Result<std::vector<LowerEntry>> list(const std::string& path) const;
    // The extended attributes of `path` (not followed if a symlink) that this process may read,
    // in name order; none where the source's filesystem has none.
    Result<std::vector<Xattr>> xattrs(const std::string& path) const;
    // A name for `path` that calls taking only a path (inotify_add_watch) resolve through the
    // root fd: /proc/self/fd/N/path.
    std::string proc_path(const std::string& path) const;

private:
    explicit LowerLayer(UniqueFd root) : m_root(std::move(root)) {}
    const char* relative(const std::string& path) const {
        return path.empty() ? "." : path.c_str();
    }

    UniqueFd m_root;
};

// "dir/name", or "name" under the root.
std::string join_path(const std::string& dir, std::string_view name);
// The directory part of a relative path ("" for a name in the root), and the last part.
std::string parent_of(const std::string& path);
std::string base_of(const std::string& path);

}  // namespace fbfs
