// Reading /proc/self/mountinfo: is a path a mountpoint, and which fbfs daemon serves it.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace fbfs {

struct MountEntry {
    std::string fstype;  // e.g. "fuse.fbfs"
    std::string source;  // e.g. "fbfs:default:1234"
};

// The mount whose mountpoint is exactly `path` (made absolute, not resolved), if any.
std::optional<MountEntry> find_mount(const std::filesystem::path& path);

// Where the fbfs mount whose source is `source` ("fbfs:<volume>:<pid>") is mounted, as this
// process's mount namespace sees it; nullopt if it sees none.
std::optional<std::filesystem::path> mountpoint_of(std::string_view source);

// The daemon pid an fbfs mount's source names ("fbfs:<volume>:<pid>").
std::optional<pid_t> daemon_pid(const MountEntry& entry);

}  // namespace fbfs
