#include "store/base/owned_temp_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>

namespace fbfs {

namespace fs = std::filesystem;

Result<OwnedTempFile> create_owned_temp(const fs::path& dir, std::string_view prefix) {
    std::string path = (dir / fmt::format("{}{}-XXXXXX", prefix, ::getpid())).string();
    UniqueFd fd(::mkostemp(path.data(), O_CLOEXEC));
    if (!fd) {
        return errno_error(fmt::format("cannot make a file in {}", dir.string()));
    }
    // New and unique: nobody else can hold its lock yet.
    (void)::flock(fd.get(), LOCK_EX | LOCK_NB);
    return OwnedTempFile{std::move(fd), std::move(path)};
}

bool is_abandoned_temp(const fs::path& dir, const std::string& name, std::string_view prefix) {
    if (!name.starts_with(prefix)) {
        return false;
    }
    const char* start = name.data() + prefix.size();
    const char* end = name.data() + name.size();
    pid_t pid = 0;
    auto [after, error] = std::from_chars(start, end, pid);
    if (error != std::errc() || after == end || *after != '-' || pid <= 0) {
        return false;
    }
    if (::kill(pid, 0) == 0 || errno == EPERM) {
        return false;
    }
    UniqueFd fd(::open((dir / name).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    return fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0;
}

std::size_t remove_abandoned_temps(const fs::path& dir, std::string_view prefix) {
    std::size_t removed = 0;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (is_abandoned_temp(dir, name, prefix) && ::unlink((dir / name).c_str()) == 0) {
            ++removed;
        }
    }
    return removed;
}

}  // namespace fbfs
