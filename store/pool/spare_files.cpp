#include "store/pool/spare_files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fbfs {

SpareFiles::~SpareFiles() {
    // Nobody else holds this object any more; the lock is for the analysis.
    LockGuard lock(m_mutex);
    for (const auto& file : m_files) {
        ::unlink(file.c_str());
    }
}

void SpareFiles::enable(std::string prefix, std::size_t count) {
    LockGuard lock(m_mutex);
    m_prefix = std::move(prefix);
    m_limit = count;
}

bool SpareFiles::keep(const std::filesystem::path& file) {
    std::filesystem::path spare;
    {
        LockGuard lock(m_mutex);
        if (m_files.size() + m_pending >= m_limit) {
            return false;
        }
        ++m_pending;
        spare = m_dir / fmt::format("{}{}", m_prefix, m_next++);
    }
    struct stat st {};
    bool kept = ::lstat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= k_largest &&
                ::rename(file.c_str(), spare.c_str()) == 0;
    LockGuard lock(m_mutex);
    --m_pending;
    if (kept) {
        m_files.push_back(std::move(spare));
    }
    return kept;
}

std::optional<std::pair<UniqueFd, std::filesystem::path>> SpareFiles::take() {
    for (;;) {
        std::filesystem::path spare;
        {
            LockGuard lock(m_mutex);
            if (m_files.empty()) {
                return std::nullopt;
            }
            spare = std::move(m_files.back());
            m_files.pop_back();
        }
        // Objects are read-only. The old bytes go, so none shows through a hole of the new
        // content: as a punched hole where that works, since ext4 flushes a file truncated to
        // nothing when it is closed (its auto_da_alloc), which a staging file need not pay.
        if (::chmod(spare.c_str(), 0600) == 0) {
            UniqueFd fd(::open(spare.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
            struct stat st {};
            constexpr int k_punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
            bool emptied = fd && ::fstat(fd.get(), &st) == 0 &&
                           (::fallocate(fd.get(), k_punch, 0, st.st_size) == 0 ||
                            ::ftruncate(fd.get(), 0) == 0);
            if (emptied) {
                return std::pair{std::move(fd), std::move(spare)};
            }
        }
        ::unlink(spare.c_str());
    }
}

}  // namespace fbfs
