#include "fs/fuse_device.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string_view>
#include <vector>

namespace fbfs {

namespace fs = std::filesystem;

namespace {

constexpr const char* k_fuse_device = "/dev/fuse";

// Every fusermount3 worth trying, in the order they are preferred; duplicates are harmless.
std::vector<fs::path> fusermount_candidates() {
    std::vector<fs::path> candidates{fs::path(k_fusermount_dir) / "fusermount3",
                                     "/bin/fusermount3"};
    const char* path = std::getenv("PATH");
    std::string_view rest = path != nullptr ? path : "";
    while (!rest.empty()) {
        auto colon = rest.find(':');
        auto dir = rest.substr(0, colon);
        if (!dir.empty()) {
            candidates.push_back(fs::path(dir) / "fusermount3");
        }
        rest = colon == std::string_view::npos ? "" : rest.substr(colon + 1);
    }
    return candidates;
}

bool is_setuid_root(const struct stat& st) {
    return st.st_uid == 0 && (st.st_mode & S_ISUID) != 0;
}

}  // namespace

Result<void> check_fuse_device() {
    struct stat st {};
    if (::stat(k_fuse_device, &st) != 0) {
        return make_error(ENODEV,
                          "/dev/fuse is missing (load the fuse kernel module: modprobe fuse; in a "
                          "container, pass --device /dev/fuse --cap-add SYS_ADMIN)");
    }
    if (!S_ISCHR(st.st_mode)) {
        return make_error(ENODEV,
                          "/dev/fuse is not the FUSE device (in a container, pass "
                          "--device /dev/fuse)");
    }
    if (::geteuid() != 0 && ::access(k_fuse_device, R_OK | W_OK) != 0) {
        return make_error(EACCES, fmt::format("/dev/fuse is not readable and writable by you "
                                              "(mode {:04o}; desktop distributions and CI runners "
                                              "have 0666: as root, chmod 0666 /dev/fuse)",
                                              st.st_mode & 07777));
    }
    return {};
}

Result<fs::path> find_fusermount() {
    std::optional<fs::path> not_setuid;
    for (const auto& candidate : fusermount_candidates()) {
        struct stat st {};
        if (::stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
            ::access(candidate.c_str(), X_OK) != 0) {
            continue;
        }
        if (is_setuid_root(st)) {
            return candidate;
        }
        if (!not_setuid) {
            not_setuid = candidate;
        }
    }
    if (not_setuid) {
        return make_error(EPERM, fmt::format("{} is not setuid root, so it cannot mount for you "
                                             "(reinstall the fuse3 package, or as root: chmod "
                                             "u+s {})",
                                             not_setuid->string(), not_setuid->string()));
    }
    return make_error(ENOENT,
                      "fusermount3 is not installed (install the fuse3 package: "
                      "apt-get install fuse3)");
}

Result<void> prefer_fusermount(const fs::path& fusermount) {
    auto first_choice = fs::path(k_fusermount_dir) / "fusermount3";
    if (fusermount.parent_path() == fs::path(k_fusermount_dir)) {
        return {};
    }
    if (::access(first_choice.c_str(), F_OK) == 0) {
        return make_error(
            EPERM, fmt::format("{} is not setuid root, and libfuse runs it before "
                               "{} (reinstall the fuse3 package, or as root: chmod "
                               "u+s {})",
                               first_choice.string(), fusermount.string(), first_choice.string()));
    }
    const char* path = std::getenv("PATH");
    std::string search = fusermount.parent_path().string();
    if (path != nullptr && *path != '\0') {
        search += ":" + std::string(path);
    }
    ::setenv("PATH", search.c_str(), 1);
    return {};
}

std::string mount_refusal_hint(const std::string& message, const fs::path& mountpoint) {
    bool refused = message.find("Permission denied") != std::string::npos ||
                   message.find("Operation not permitted") != std::string::npos;
    if (!refused || ::geteuid() == 0) {
        return "";
    }
    return fmt::format(
        "; on Ubuntu 25.04 and later AppArmor lets fusermount3 mount only under "
        "$HOME, /mnt, /media and /tmp: mount there instead of {}",
        mountpoint.string());
}

}  // namespace fbfs
