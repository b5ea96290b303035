// Thin wrappers over the POSIX calls programs make on a mount, for tests that assert what those
// programs rely on. Helpers named *_of or that do I/O throw std::system_error (with errno and the
// path) when the call fails; helpers named *_outcome never throw and return "ok" or the errno's
// name ("ENOENT"), so a failed assertion reads `"EISDIR" == "ENOTEMPTY"`.
//
// Stateless, but most read or set errno: call them from one thread at a time per errno use.
#pragma once

#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <system_error>

#include "store/base/unique_fd.h"

namespace fbfs::test {

// A std::system_error for the current errno, with `what` (the call and its path) as message.
std::system_error sys_error(const std::string& what);

// What a system call came to: "ok" if `rc` >= 0, else the name of errno ("ENOENT").
std::string outcome(long rc);

// Opens `path` with `flags` | O_CLOEXEC (and `mode` if it creates). Throws on failure.
fbfs::UniqueFd open_fd(const std::filesystem::path& path, int flags, mode_t mode = 0644);
// outcome() of an open(), closing the file if it opened. Never throws.
std::string open_outcome(const std::filesystem::path& path, int flags, mode_t mode = 0644);

// Writes all of `data` to `fd` with write(2), retrying on EINTR. Throws on failure.
void write_all(int fd, std::string_view data);
// Writes all of `data` to `fd` at `offset` with pwrite(2), retrying on EINTR. Throws on failure.
void pwrite_all(int fd, std::string_view data, off_t offset);
// Everything in the file behind `fd`, read with pread from offset 0. Throws on failure.
std::string pread_all(int fd);
// Everything in the file at `path`, read with open and pread. Throws on failure.
std::string read_path(const std::filesystem::path& path);
// Creates or truncates `path` with `mode` (if created) and writes `content` with write(2).
// Throws on failure.
void put_file(const std::filesystem::path& path, std::string_view content, mode_t mode = 0644);

// stat(2) and lstat(2) of `path`. Throw on failure.
struct stat stat_of(const std::filesystem::path& path);
struct stat lstat_of(const std::filesystem::path& path);
// What lstat(2) of `path` came to: "ok" or the errno's name. Never throws.
std::string stat_outcome(const std::filesystem::path& path);
// The permission bits of `st` (st_mode & 07777).
unsigned permissions(const struct stat& st);
// The target of the symlink at `path`. Throws on failure.
std::string readlink_of(const std::filesystem::path& path);
// The extended attributes of `path` (not followed if a symlink) whose names start with `prefix`,
// by name: what llistxattr(2) and lgetxattr(2) say. None where the filesystem has none. Throws on
// other failures.
std::map<std::string, std::string> xattrs_of(const std::filesystem::path& path,
                                             std::string_view prefix = "user.");

// "seconds.nanoseconds", nine digits after the point, so times compare and print exactly.
std::string time_text(const timespec& t);
// The timespec of `seconds` and `nanoseconds`.
timespec at(time_t seconds, long nanoseconds);
// utimensat(2) of `path` with `flags`. Throws on failure.
void set_times(const std::filesystem::path& path, timespec atime, timespec mtime, int flags = 0);
// CLOCK_REALTIME now, in seconds since the epoch.
double seconds_now();
// `t` in seconds.
double seconds(const timespec& t);

// renameat2(2) with `flags`: its return value (-1 with errno set on failure). Never throws.
long rename2(const std::filesystem::path& from, const std::filesystem::path& to, unsigned flags);

// Every name readdir(3) returns for `dir`, with how often it returned it. Throws on failure.
std::map<std::string, int> readdir_counts(const std::filesystem::path& dir);
// The names readdir(3) returns for `dir`, without . and .. Throws on failure.
std::set<std::string> names_in(const std::filesystem::path& dir);

// True if `condition` holds within `limit`, tried every `poll`: for what the kernel or a daemon
// does on its own time (a change pushed to the kernel, a warm-up that finishes).
bool within(std::chrono::milliseconds limit, const std::function<bool()>& condition,
            std::chrono::milliseconds poll = std::chrono::milliseconds(1));

// True if the test runs as root; otherwise WARNs that nothing was asserted and returns false.
bool running_as_root();
// Fails the test unless it runs as root (CI does): these tests change owners, mount tmpfs or
// act as other users, and a test that asserts nothing when it cannot run would pass silently.
void require_root();

}  // namespace fbfs::test
