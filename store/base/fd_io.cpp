#include "store/base/fd_io.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>

namespace fbfs {

namespace {

// Large enough that syscalls and hasher calls cost nothing next to the bytes, small enough to
// stay in L2 between the read and the hash (1 MiB measured a little faster than 4 or 8 MiB).
constexpr std::size_t k_chunk = std::size_t{1} << 20;

}  // namespace

// A name for `fd` in error messages: the path it was opened with, where /proc knows it.
std::string fd_name(int fd) {
    std::string link = fmt::format("/proc/self/fd/{}", fd);
    char target[4096];
    ssize_t n = ::readlink(link.c_str(), target, sizeof target);
    if (n <= 0 || static_cast<std::size_t>(n) >= sizeof target) {
        return fmt::format("fd {}", fd);
    }
    return std::string(target, static_cast<std::size_t>(n));
}

Result<void> write_all(int fd, std::string_view bytes, std::string_view what) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return errno_error(fmt::format("cannot write {}", what));
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

Result<void> pwrite_all(int fd, std::string_view bytes, off_t offset, std::string_view what) {
    while (!bytes.empty()) {
        ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return errno_error(fmt::format("cannot write {}", what));
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
        offset += n;
    }
    return {};
}

Result<std::optional<DataExtent>> next_data(int fd, off_t from, off_t end) {
    if (from >= end) {
        return std::nullopt;
    }
    off_t start = ::lseek(fd, from, SEEK_DATA);
    if (start < 0 && errno == ENXIO) {
        return std::nullopt;  // holes from `from` to the end of the file
    }
    if (start < 0 && (errno == EINVAL || errno == EOPNOTSUPP || errno == ESPIPE)) {
        return DataExtent{from, end};  // nothing here knows holes
    }
    if (start < 0) {
        return errno_error(fmt::format("cannot look for data in {}", fd_name(fd)));
    }
    if (start >= end) {
        return std::nullopt;
    }
    off_t hole = ::lseek(fd, start, SEEK_HOLE);
    if (hole < 0) {
        return errno_error(fmt::format("cannot look for holes in {}", fd_name(fd)));
    }
    return DataExtent{start, std::min(hole, end)};
}

namespace {

// Where a pread() loop over a regular file stands against its holes: what is known to be hole
// and data from the current offset on, learnt a stretch at a time.
class HoleMap {
public:
    HoleMap(int fd, off_t offset) : m_fd(fd) {
        struct stat st {};
        m_size = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : 0;
        m_data_end = m_hole_end = offset;
    }

    // How many bytes from `offset` on are hole (zeros that need no reading), or 0 if data comes
    // first; `limit` caps the answer. Past the size the file had at the start, all is data.
    Result<std::uint64_t> hole_at(off_t offset, std::uint64_t limit) {
        if (offset >= m_hole_end && offset >= m_data_end && offset < m_size) {
            TRY_ASSIGN(std::optional<DataExtent> extent, next_data(m_fd, offset, m_size));
            m_hole_end = extent ? extent->start : m_size;
            m_data_end = extent ? extent->end : m_size;
        }
        if (offset >= m_hole_end) {
            return 0;
        }
        return std::min<std::uint64_t>(limit, static_cast<std::uint64_t>(m_hole_end - offset));
    }

private:
    int m_fd;
    off_t m_size = 0;
    off_t m_hole_end = 0;  // [offset, m_hole_end) is a hole
    off_t m_data_end = 0;  // [m_hole_end, m_data_end) is data
};

}  // namespace

Result<std::uint64_t> read_chunks(int fd, std::optional<off_t> offset,
                                  const std::atomic<bool>* stop,
                                  const std::function<Result<void>(std::string_view)>& visit) {
    auto buffer = std::make_unique_for_overwrite<char[]>(k_chunk);
    std::unique_ptr<char[]> zeros;
    std::optional<HoleMap> holes;
    if (offset) {
        holes.emplace(fd, *offset);
    }
    std::uint64_t total = 0;
    while (!stop || !stop->load(std::memory_order_relaxed)) {
        std::uint64_t hole = 0;
        if (holes) {
            TRY_ASSIGN(hole, holes->hole_at(*offset, k_chunk));
        }
        if (hole > 0 && !zeros) {
            zeros = std::make_unique<char[]>(k_chunk);
        }
        ssize_t n = 0;
        if (hole > 0) {
            n = static_cast<ssize_t>(hole);
        } else {
            n = offset ? ::pread(fd, buffer.get(), k_chunk, *offset)
                       : ::read(fd, buffer.get(), k_chunk);
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return errno_error(fmt::format("cannot read {}", fd_name(fd)));
        }
        if (n == 0) {
            return total;
        }
        const char* bytes = hole > 0 ? zeros.get() : buffer.get();
        TRY(visit({bytes, static_cast<std::size_t>(n)}));
        if (offset) {
            *offset += n;
        }
        total += static_cast<std::uint64_t>(n);
    }
    return make_error(ECANCELED, "cancelled");
}

}  // namespace fbfs
