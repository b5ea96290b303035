#include "fs/mount_table.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <sstream>
#include <vector>

namespace fbfs {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& field) {
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size()) {
            out.push_back(static_cast<char>(std::stoi(field.substr(i + 1, 3), nullptr, 8)));
            i += 3;
        } else {
            out.push_back(field[i]);
        }
    }
    return out;
}

// Calls `visit` with every line of /proc/self/mountinfo: its mountpoint and its entry.
void for_each_mount(const std::function<void(const std::string&, MountEntry)>& visit) {
    std::ifstream in("/proc/self/mountinfo");
    for (std::string line; std::getline(in, line);) {
        std::istringstream fields(line);
        std::vector<std::string> parts;
        for (std::string part; fields >> part;) {
            parts.push_back(part);
        }
        auto dash = std::find(parts.begin(), parts.end(), "-");
        if (parts.size() < 5 || dash == parts.end() || parts.end() - dash < 3) {
            continue;
        }
        visit(unescape(parts[4]), MountEntry{*(dash + 1), unescape(*(dash + 2))});
    }
}

}  // namespace

std::optional<MountEntry> find_mount(const std::filesystem::path& path) {
    std::string wanted = std::filesystem::absolute(path).lexically_normal().string();
    if (wanted.size() > 1 && wanted.back() == '/') {
        wanted.pop_back();
    }
    std::optional<MountEntry> found;
    for_each_mount([&](const std::string& mountpoint, MountEntry entry) {
        if (mountpoint == wanted) {
            found = std::move(entry);  // the last one is on top
        }
    });
    return found;
}

std::optional<std::filesystem::path> mountpoint_of(std::string_view source) {
    std::optional<std::filesystem::path> found;
    for_each_mount([&](const std::string& mountpoint, const MountEntry& entry) {
        if (entry.fstype == "fuse.fbfs" && entry.source == source) {
            found = mountpoint;
        }
    });
    return found;
}

std::optional<pid_t> daemon_pid(const MountEntry& entry) {
    auto colon = entry.source.rfind(':');
    if (entry.fstype != "fuse.fbfs" || colon == std::string::npos) {
        return std::nullopt;
    }
    pid_t pid = 0;
    const char* begin = entry.source.data() + colon + 1;
    const char* end = entry.source.data() + entry.source.size();
    if (std::from_chars(begin, end, pid).ec != std::errc() || pid <= 0) {
        return std::nullopt;
    }
    return pid;
}

}  // namespace fbfs
