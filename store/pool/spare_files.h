// SpareFiles: files of removed objects kept in a pool's tmp/ to be filled again as new temp files,
// so that rewriting a small file neither allocates an inode nor frees one (see
// ObjectPool::keep_spares()). Keeps nothing until enable().
//
// Thread-safe: the mutex guards the list only; no system call is made under it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/base/thread_safety.h"
#include "store/base/unique_fd.h"

namespace fbfs {

class SpareFiles {
public:
    // The largest file kept: spares hold their blocks until they are taken.
    static constexpr off_t k_largest = 64 * 1024;

    explicit SpareFiles(std::filesystem::path dir) : m_dir(std::move(dir)) {}
    // Deletes the spares left.
    ~SpareFiles();
    SpareFiles(const SpareFiles&) = delete;
    SpareFiles& operator=(const SpareFiles&) = delete;

    // Keeps up to `count` spares from now on, named `prefix` and a number in the directory.
    void enable(std::string prefix, std::size_t count);
    // Moves `file`, a regular file of at most k_largest bytes on the directory's filesystem, in
    // as a spare: true. False, leaving `file` where it is, if no spare is wanted (disabled, the
    // list full, the file larger or not a regular file) or the rename failed.
    bool keep(const std::filesystem::path& file);
    // Takes a spare, emptied and open for reading and writing (mode 0600), with its path; nullopt
    // when there is none. A spare that cannot be opened is deleted and the next one tried.
    std::optional<std::pair<UniqueFd, std::filesystem::path>> take();

private:
    const std::filesystem::path m_dir;
    Mutex m_mutex;
    std::string m_prefix GUARDED_BY(m_mutex);
    std::size_t m_limit GUARDED_BY(m_mutex) = 0;
    std::size_t m_pending GUARDED_BY(m_mutex) = 0;  // keep() calls between check and rename
    std::uint64_t m_next GUARDED_BY(m_mutex) = 0;   // numbers the spares, never reused
    std::vector<std::filesystem::path> m_files GUARDED_BY(m_mutex);
};

}  // namespace fbfs
