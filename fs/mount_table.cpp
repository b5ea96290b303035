#include "fs/mount_table.h"

#include <algorithm>
#include <charconv>
#include <fstream>
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

}  // namespace

std::optional<MountEntry> find_mount(const std::filesystem::path& path) {
    std::string wanted = std::filesystem::absolute(path).lexically_normal().string();
    if (wanted.size() > 1 && wanted.back() == '/') {
        wanted.pop_back();
    }
    std::ifstream in("/proc/self/mountinfo");
    std::optional<MountEntry> found;
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
        if (unescape(parts[4]) == wanted) {
            found = MountEntry{*(dash + 1), unescape(*(dash + 2))};  // the last one is on top
        }
    }
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
