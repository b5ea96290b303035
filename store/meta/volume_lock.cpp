#include "store/meta/volume_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <string_view>
#include <thread>

#include "store/meta/schema.h"

namespace fbfs {

namespace {

std::filesystem::path lock_path(const std::filesystem::path& store_root,
                                const std::string& volume) {
    return store_root / "locks" / (volume + ".lock");
}

// How long holder() waits for a holder to write its pid, and how often it looks.
constexpr auto k_pid_wait = std::chrono::seconds(1);
constexpr auto k_pid_poll = std::chrono::milliseconds(5);

// The pid written in a lock file: fixed width (digits, spaces, newline), so one pwrite replaces
// it whole and the file is never seen empty or half written by a reader.
constexpr std::size_t k_pid_width = 16;

std::optional<pid_t> read_pid(int fd) {
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    pid_t pid = 0;
    if (n <= 0 || std::from_chars(buf, buf + n, pid).ec != std::errc() || pid <= 0) {
        return std::nullopt;
    }
    return pid;
}

bool is_alive(pid_t pid) {
    return ::kill(pid, 0) == 0 || errno == EPERM;
}

// A lock over the whole lock file. It is an open file description lock (F_OFD_SETLK), not
// flock(2): both belong to the open file and die with the holder, but only this kind can be
// tested without being taken (F_OFD_GETLK), so holder() never makes a concurrent acquire() fail.
struct flock whole_file(short type) {
    struct flock lock {};
    lock.l_type = type;
    lock.l_whence = SEEK_SET;
    return lock;
}

// What process `pid` is doing with a volume, from its command line: "pack", "unpack", "volume",
// "gc", or "" for anything else (a mount's daemon).
std::string holder_command(pid_t pid) {
    std::string args;
    if (UniqueFd fd(::open(fmt::format("/proc/{}/cmdline", pid).c_str(), O_RDONLY | O_CLOEXEC));
        fd) {
        char buf[4096];
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        args.assign(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    }
    // The subcommand is the first argument after the program that is not an option.
    for (std::size_t at = args.find('\0'); at != std::string::npos && at + 1 < args.size();) {
        std::size_t end = args.find('\0', at + 1);
        std::string arg = args.substr(at + 1, end - at - 1);
        if (!arg.starts_with("-")) {
            bool known = arg == "pack" || arg == "unpack" || arg == "volume" || arg == "gc";
            return known ? arg : "";
        }
        at = end;
    }
    return "";
}

}  // namespace

Error VolumeLock::busy(const std::filesystem::path& store_root, const std::string& volume,
                       pid_t pid, std::string_view when_mounted) {
    std::string command = pid > 0 ? holder_command(pid) : "";
    std::string who = pid > 0 ? std::to_string(pid) : "unknown";
    if (!command.empty()) {
        return Error{EBUSY, fmt::format("volume '{}' of store {} is in use by pid {} (fbfs {}); "
                                        "wait for it to finish",
                                        volume, store_root.string(), who, command)};
    }
    return Error{EBUSY, fmt::format("volume '{}' of store {} is already served by pid {}, which "
                                    "mounted it ({})",
                                    volume, store_root.string(), who, when_mounted)};
}

Result<VolumeLock> VolumeLock::acquire(const std::filesystem::path& store_root,
                                       const std::string& volume) {
    // The name becomes a file name: never let "../x" put a lock outside locks/.
    TRY(check_volume_name(volume));
    auto path = lock_path(store_root, volume);
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) {
        return errno_error(fmt::format("cannot open lock file {}", path.string()));
    }
    if (struct flock lock = whole_file(F_WRLCK); ::fcntl(fd.get(), F_OFD_SETLK, &lock) != 0) {
        if (errno != EAGAIN && errno != EACCES) {
            return errno_error(fmt::format("cannot lock {}", path.string()));
        }
        return std::unexpected(busy(store_root, volume, read_pid(fd.get()).value_or(0),
                                    "unmount it with fbfs umount, or mount another --volume"));
    }
    VolumeLock lock(std::move(fd));
    lock.record_pid();
    return lock;
}

std::optional<pid_t> VolumeLock::holder(const std::filesystem::path& store_root,
                                        const std::string& volume) {
    if (!check_volume_name(volume)) {
        return std::nullopt;
    }
    UniqueFd fd(::open(lock_path(store_root, volume).c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return std::nullopt;
    }
    // A holder writes its pid just after it takes the lock; until then the file is empty or
    // names the last holder, who is gone.
    auto deadline = std::chrono::steady_clock::now() + k_pid_wait;
    while (true) {
        struct flock lock = whole_file(F_WRLCK);
        if (::fcntl(fd.get(), F_OFD_GETLK, &lock) != 0 || lock.l_type == F_UNLCK) {
            return std::nullopt;
        }
        if (auto pid = read_pid(fd.get()); pid && is_alive(*pid)) {
            return pid;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(k_pid_poll);
    }
}

void VolumeLock::record_pid() const {
    auto text = fmt::format("{:<{}}\n", ::getpid(), k_pid_width - 1);
    // Written over what is there in one call (a former holder's pid is no longer), and only then
    // cut to its length (a file from an fbfs that wrote the pid bare is shorter anyway).
    if (::pwrite(m_fd.get(), text.data(), text.size(), 0) == static_cast<ssize_t>(text.size())) {
        [[maybe_unused]] int ignored = ::ftruncate(m_fd.get(), static_cast<off_t>(text.size()));
    }
}

}  // namespace fbfs
