#include "tests/support/mount.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "fs/process.h"
#include "tests/support/run.h"

namespace fbfs::test {

namespace {

// A stuck daemon must fail the test, not hang the whole run.
constexpr const char* k_command_timeout = "120";

// Undoes mountinfo's octal escapes ("\040" for a space).
std::string unescape(const std::string& field) {
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size()) {
            out += static_cast<char>(std::stoi(field.substr(i + 1, 3), nullptr, 8));
            i += 3;
        } else {
            out += field[i];
        }
    }
    return out;
}

// The visible (last) mount at `mountpoint`, if any.
std::optional<MountInfo> find_mount(const std::filesystem::path& mountpoint) {
    auto found = mounts_at(mountpoint);
    if (found.empty()) {
        return std::nullopt;
    }
    return found.back();
}

// The absolute path of `path` with symlinks in its parent resolved, found without touching
// `path` itself (which may be a stuck mount).
std::filesystem::path resolved(const std::filesystem::path& path) {
    auto absolute = std::filesystem::absolute(path).lexically_normal();
    if (!absolute.has_filename()) {
        absolute = absolute.parent_path();
    }
    return std::filesystem::weakly_canonical(absolute.parent_path()) / absolute.filename();
}

std::string describe(const std::vector<std::string>& args, const RunResult& result) {
    std::string message =
        "`fbfs " + command_line(args) + "` exited with status " + std::to_string(result.status);
    if (result.status == 124) {
        message += std::string(" (timed out after ") + k_command_timeout + " s)";
    }
    return message + "; stderr: " + result.err +
           (result.out.empty() ? "" : "; stdout: " + result.out);
}

RunResult run_fbfs(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"timeout", "-k", "10", k_command_timeout, FBFS_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
}

// Aborts the FUSE connection of device "major:minor" if fusectl is mounted, so that a daemon
// that no longer answers releases everyone waiting on it.
void abort_connection(const std::string& device) {
    auto colon = device.find(':');
    if (colon == std::string::npos) {
        return;
    }
    std::filesystem::path abort_file =
        std::filesystem::path("/sys/fs/fuse/connections") / device.substr(colon + 1) / "abort";
    std::error_code ec;
    if (std::filesystem::exists(abort_file, ec)) {
        std::ofstream(abort_file) << "1";
    }
}

}  // namespace

std::vector<MountInfo> mounts_at(const std::filesystem::path& path) {
    std::ifstream in("/proc/self/mountinfo");
    std::vector<MountInfo> found;
    for (std::string line; std::getline(in, line);) {
        std::istringstream fields(line);
        std::vector<std::string> parts;
        for (std::string part; fields >> part;) {
            parts.push_back(part);
        }
        auto dash = std::find(parts.begin(), parts.end(), "-");
        if (parts.size() < 5 || parts.end() - dash < 4 ||
            std::filesystem::path(unescape(parts[4])) != path) {
            continue;
        }
        found.push_back(MountInfo{parts[2], unescape(*(dash + 2)), *(dash + 1), *(dash + 3)});
    }
    return found;
}

bool is_fuse_mounted(const std::filesystem::path& mountpoint) {
    auto entry = find_mount(resolved(mountpoint));
    return entry && entry->fstype.starts_with("fuse");
}

std::optional<pid_t> daemon_pid(const std::filesystem::path& mountpoint) {
    auto found = mounts_at(mountpoint);
    if (found.empty() || found.back().fstype != "fuse.fbfs") {
        return std::nullopt;
    }
    const auto& source = found.back().source;
    auto colon = source.rfind(':');
    if (colon == std::string::npos) {
        return std::nullopt;
    }
    return static_cast<pid_t>(std::stol(source.substr(colon + 1)));
}

MountpointGuard::~MountpointGuard() {
    try {
        for (int round = 0; round < 3 && !mounts_at(m_mountpoint).empty(); ++round) {
            auto pid = daemon_pid(m_mountpoint);
            if (run_cli({"umount", m_mountpoint.string()}).status != 0 ||
                !mounts_at(m_mountpoint).empty()) {
                force_unmount(m_mountpoint);
            }
            if (pid && !fbfs::wait_until_exited(*pid, std::chrono::seconds(10))) {
                ::kill(*pid, SIGKILL);  // the daemon this test started, stuck
            }
        }
    } catch (...) {
        force_unmount(m_mountpoint);
    }
}

bool force_unmount(const std::filesystem::path& mountpoint) noexcept {
    try {
        auto point = resolved(mountpoint);
        auto entry = find_mount(point);
        if (!entry) {
            return true;
        }
        run({"fusermount3", "-u", "-z", point.string()});
        if (find_mount(point)) {
            run({"umount", "-l", point.string()});
        }
        abort_connection(entry->device);
        return !find_mount(point);
    } catch (...) {
        return false;
    }
}

Mount::Mount(std::filesystem::path store, std::filesystem::path mountpoint,
             std::vector<std::string> extra_args)
    : m_store(std::move(store)), m_extra_args(std::move(extra_args)) {
    std::filesystem::create_directories(mountpoint);
    m_mountpoint = resolved(mountpoint);
    mount();
}

Mount::~Mount() {
    if (!m_mounted) {
        return;
    }
    m_mounted = false;
    try {
        auto result = run_fbfs({"umount", m_mountpoint.string()});
        if (result.status == 0 && !find_mount(m_mountpoint)) {
            return;
        }
    } catch (...) {
        // Fall through to forcing it away.
    }
    force_unmount(m_mountpoint);
}

void Mount::mount() {
    if (m_mounted) {
        return;
    }
    std::vector<std::string> args{"mount", "--store", m_store.string()};
    args.insert(args.end(), m_extra_args.begin(), m_extra_args.end());
    args.push_back(m_mountpoint.string());
    auto result = run_fbfs(args);
    if (result.status != 0) {
        force_unmount(m_mountpoint);  // in case it mounted and then failed
        throw std::runtime_error(describe(args, result));
    }
    if (!is_fuse_mounted(m_mountpoint)) {
        force_unmount(m_mountpoint);
        throw std::runtime_error(describe(args, result) +
                                 "; but no FUSE filesystem is mounted at " + m_mountpoint.string());
    }
    m_mounted = true;
}

void Mount::unmount() {
    if (!m_mounted) {
        return;
    }
    m_mounted = false;
    std::vector<std::string> args{"umount", m_mountpoint.string()};
    auto result = run_fbfs(args);
    if (result.status != 0) {
        force_unmount(m_mountpoint);
        throw std::runtime_error(describe(args, result));
    }
    if (find_mount(m_mountpoint)) {
        force_unmount(m_mountpoint);
        throw std::runtime_error(describe(args, result) + "; but " + m_mountpoint.string() +
                                 " is still mounted");
    }
}

void Mount::remount() {
    unmount();
    mount();
}

MountedStore::MountedStore(std::vector<std::string> extra_args)
    : mount(tmp / "store", tmp / "mnt", std::move(extra_args)) {}

std::string source_status(const std::filesystem::path& store, const std::string& volume) {
    std::ifstream in(store / "log" / (volume + ".source"));
    std::string line;
    std::getline(in, line);
    return line;
}

}  // namespace fbfs::test
