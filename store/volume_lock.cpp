#include "store/volume_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <string_view>

#include "store/schema.h"

namespace fbfs {

namespace {

std::filesystem::path lock_path(const std::filesystem::path& store_root,
                                const std::string& volume) {
    return store_root / "locks" / (volume + ".lock");
}

std::optional<pid_t> read_pid(int fd) {
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    pid_t pid = 0;
    if (n <= 0 || std::from_chars(buf, buf + n, pid).ec != std::errc() || pid <= 0) {
        return std::nullopt;
    }
    return pid;
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

}  // namespace

Result<VolumeLock> VolumeLock::acquire(const std::filesystem::path& store_root,
                                       const std::string& volume) {
    // The name becomes a file name: never let "../x" put a lock outside locks/.
    if (auto ok = check_volume_name(volume); !ok) {
        return std::unexpected(ok.error());
    }
    auto path = lock_path(store_root, volume);
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) {
        return errno_error(fmt::format("cannot open lock file {}", path.string()));
    }
    if (struct flock lock = whole_file(F_WRLCK); ::fcntl(fd.get(), F_OFD_SETLK, &lock) != 0) {
        if (errno != EAGAIN && errno != EACCES) {
            return errno_error(fmt::format("cannot lock {}", path.string()));
        }
        auto pid = read_pid(fd.get());
        return make_error(EBUSY, fmt::format("volume '{}' of store {} is already served by pid {} "
                                             "(unmount it with fbfs umount, or mount another "
                                             "--volume)",
                                             volume, store_root.string(),
                                             pid ? std::to_string(*pid) : "unknown"));
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
    struct flock lock = whole_file(F_WRLCK);
    if (!fd || ::fcntl(fd.get(), F_OFD_GETLK, &lock) != 0 || lock.l_type == F_UNLCK) {
        return std::nullopt;
    }
    return read_pid(fd.get()).value_or(0);
}

void VolumeLock::record_pid() const {
    auto text = std::to_string(::getpid());
    if (::ftruncate(m_fd.get(), 0) == 0) {
        [[maybe_unused]] auto n = ::pwrite(m_fd.get(), text.data(), text.size(), 0);
    }
}

}  // namespace fbfs
