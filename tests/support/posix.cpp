#include "tests/support/posix.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

namespace fbfs::test {

namespace fs = std::filesystem;

std::system_error sys_error(const std::string& what) {
    return std::system_error(errno, std::generic_category(), what);
}

std::string outcome(long rc) {
    if (rc >= 0) {
        return "ok";
    }
    int error = errno;
    const char* name = strerrorname_np(error);
    return name != nullptr ? name : "errno " + std::to_string(error);
}

fbfs::UniqueFd open_fd(const fs::path& path, int flags, mode_t mode) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) {
        throw sys_error("open " + path.string());
    }
    return UniqueFd(fd);
}

std::string open_outcome(const fs::path& path, int flags, mode_t mode) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    std::string result = outcome(fd);
    if (fd >= 0) {
        ::close(fd);
    }
    return result;
}

void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            throw sys_error("write");
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

void pwrite_all(int fd, std::string_view data, off_t offset) {
    while (!data.empty()) {
        ssize_t n = ::pwrite(fd, data.data(), data.size(), offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            throw sys_error("pwrite");
        }
        data.remove_prefix(static_cast<std::size_t>(n));
        offset += n;
    }
}

std::string pread_all(int fd) {
    std::string out;
    std::vector<char> buffer(1 << 16);
    off_t offset = 0;
    for (;;) {
        ssize_t n = ::pread(fd, buffer.data(), buffer.size(), offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            throw sys_error("pread");
        }
        if (n == 0) {
            return out;
        }
        out.append(buffer.data(), static_cast<std::size_t>(n));
        offset += n;
    }
}

std::string read_path(const fs::path& path) {
    auto fd = open_fd(path, O_RDONLY);
    return pread_all(fd.get());
}

void put_file(const fs::path& path, std::string_view content, mode_t mode) {
    auto fd = open_fd(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    write_all(fd.get(), content);
}

struct stat stat_of(const fs::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw sys_error("stat " + path.string());
    }
    return st;
}

struct stat lstat_of(const fs::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        throw sys_error("lstat " + path.string());
    }
    return st;
}

std::string stat_outcome(const fs::path& path) {
    struct stat st {};
    return outcome(::lstat(path.c_str(), &st));
}

unsigned permissions(const struct stat& st) {
    return st.st_mode & 07777u;
}

std::string readlink_of(const fs::path& path) {
    std::vector<char> buffer(8192);
    ssize_t n = ::readlink(path.c_str(), buffer.data(), buffer.size());
    if (n < 0) {
        throw sys_error("readlink " + path.string());
    }
    return std::string(buffer.data(), static_cast<std::size_t>(n));
}

std::map<std::string, std::string> xattrs_of(const fs::path& path, std::string_view prefix) {
    std::map<std::string, std::string> out;
    std::vector<char> names(64 * 1024);
    ssize_t listed = ::llistxattr(path.c_str(), names.data(), names.size());
    if (listed < 0) {
        if (errno == ENOTSUP) {
            return out;
        }
        throw sys_error("llistxattr " + path.string());
    }
    for (ssize_t at = 0; at < listed;) {
        std::string name(names.data() + at);
        at += static_cast<ssize_t>(name.size()) + 1;
        if (!name.starts_with(prefix)) {
            continue;
        }
        std::vector<char> value(64 * 1024);
        ssize_t size = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
        if (size < 0) {
            throw sys_error("lgetxattr " + name + " of " + path.string());
        }
        out[name] = std::string(value.data(), static_cast<std::size_t>(size));
    }
    return out;
}

std::string time_text(const timespec& t) {
    char nanos[16];
    std::snprintf(nanos, sizeof nanos, "%09ld", static_cast<long>(t.tv_nsec));
    return std::to_string(t.tv_sec) + "." + nanos;
}

timespec at(time_t seconds, long nanoseconds) {
    timespec t{};
    t.tv_sec = seconds;
    t.tv_nsec = nanoseconds;
    return t;
}

void set_times(const fs::path& path, timespec atime, timespec mtime, int flags) {
    timespec times[2] = {atime, mtime};
    if (::utimensat(AT_FDCWD, path.c_str(), times, flags) != 0) {
        throw sys_error("utimensat " + path.string());
    }
}

double seconds_now() {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

double seconds(const timespec& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

long rename2(const fs::path& from, const fs::path& to, unsigned flags) {
    return ::syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags);
}

std::map<std::string, int> readdir_counts(const fs::path& dir) {
    DIR* stream = ::opendir(dir.c_str());
    if (stream == nullptr) {
        throw sys_error("opendir " + dir.string());
    }
    std::map<std::string, int> counts;
    errno = 0;
    while (dirent* entry = ::readdir(stream)) {
        ++counts[entry->d_name];
    }
    int error = errno;
    ::closedir(stream);
    if (error != 0) {
        errno = error;
        throw sys_error("readdir " + dir.string());
    }
    return counts;
}

std::set<std::string> names_in(const fs::path& dir) {
    std::set<std::string> names;
    for (const auto& [name, count] : readdir_counts(dir)) {
        if (name != "." && name != "..") {
            names.insert(name);
        }
    }
    return names;
}

bool running_as_root() {
    if (::geteuid() == 0) {
        return true;
    }
    WARN("this test needs root to set up; nothing was asserted");
    return false;
}

void require_root() {
    INFO("this test needs root (scripts/test and CI run as root)");
    REQUIRE(running_as_root());
}

bool within(std::chrono::milliseconds limit, const std::function<bool()>& condition,
            std::chrono::milliseconds poll) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        if (condition()) {
            return true;
        }
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(poll);
    }
}

}  // namespace fbfs::test
