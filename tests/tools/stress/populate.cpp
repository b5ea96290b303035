#include "tests/tools/stress/populate.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "tests/tools/stress/model.h"

namespace fbfs::stress {

namespace {

bool failed(std::string& line, const std::string& what) {
    line = "cannot " + what + ": " + std::strerror(errno);
    return false;
}

bool put_file(const std::string& path, mode_t mode, std::size_t size, std::uint64_t seed) {
    std::vector<char> bytes(size);
    fill_bytes(seed, bytes.data(), size);
    int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
    if (fd < 0) {
        return false;
    }
    bool ok = ::write(fd, bytes.data(), size) == static_cast<ssize_t>(size);
    return ::close(fd) == 0 && ok;
}

}  // namespace

bool populate(std::uint64_t seed, unsigned index, std::size_t files, std::string& line) {
    Rng rng(seed * 0x9E3779B97F4A7C15ull + 0x5eed + index);
    std::vector<std::string> dirs{""};
    std::size_t dir_count = files / 20 + 1;
    for (std::size_t i = 0; i < dir_count; ++i) {
        const std::string& parent = dirs[rng.below(dirs.size())];
        if (std::count(parent.begin(), parent.end(), '/') >= 2) {
            continue;
        }
        std::string path = join(parent, "sd" + std::to_string(i));
        if (::mkdir(path.c_str(), 0755) != 0) {
            return failed(line, "create " + path);
        }
        dirs.push_back(path);
    }
    static constexpr mode_t k_modes[] = {0644, 0644, 0755, 0600};
    for (std::size_t i = 0; i < files; ++i) {
        std::string path = join(dirs[rng.below(dirs.size())], "sf" + std::to_string(i));
        mode_t mode = k_modes[rng.below(4)];
        std::size_t size = rng.chance(10) ? 0 : rng.below(16 * 1024);
        if (!put_file(path, mode, size, rng.next())) {
            return failed(line, "write " + path);
        }
        if (i % 10 == 9) {
            std::string link = join(dirs[rng.below(dirs.size())], "sl" + std::to_string(i));
            if (::symlink(path.c_str(), link.c_str()) != 0) {
                return failed(line, "create " + link);
            }
        }
    }
    line = "populated " + std::to_string(files) + " files, " + std::to_string(dirs.size() - 1) +
           " dirs, " + std::to_string(files / 10) + " symlinks";
    return true;
}

}  // namespace fbfs::stress
