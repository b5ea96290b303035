// StoreCleanup: what a command that creates a store (unpack, pull) takes away again if it fails,
// so a refused command leaves no store, or an empty directory it was given, behind.
#pragma once

#include <filesystem>
#include <system_error>

namespace fbfs::cli {

// Remembers what of a store's path does not exist yet — the first missing directory on the way
// to it, or the store directory's contents if it is an empty directory — so that undo() can
// remove exactly what creating the store made.
class StoreCleanup {
public:
    explicit StoreCleanup(const std::filesystem::path& store) {
        std::error_code ec;
        std::filesystem::path path = std::filesystem::absolute(store, ec);
        if (std::filesystem::is_directory(path, ec)) {
            m_empty_dir = std::filesystem::is_empty(path, ec) ? path : std::filesystem::path();
            return;
        }
        while (!path.empty() && !std::filesystem::exists(path, ec) && path != path.parent_path()) {
            m_first_missing = path;
            path = path.parent_path();
        }
    }
    void undo() const {
        std::error_code ec;
        if (!m_first_missing.empty()) {
            std::filesystem::remove_all(m_first_missing, ec);
        }
        if (!m_empty_dir.empty()) {
            for (const auto& entry : std::filesystem::directory_iterator(m_empty_dir, ec)) {
                std::filesystem::remove_all(entry.path(), ec);
            }
        }
    }

private:
    std::filesystem::path m_first_missing;
    std::filesystem::path m_empty_dir;
};

}  // namespace fbfs::cli
