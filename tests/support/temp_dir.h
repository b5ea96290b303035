// TempDir: a fresh directory under $TMPDIR (or /tmp) for one test, removed with everything in it
// on destruction, whether the test passed or not, so no run leaves directories behind.
#pragma once

#include <filesystem>
#include <string>

namespace fbfs::test {

class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return m_path; }
    std::filesystem::path operator/(const std::string& name) const { return m_path / name; }

private:
    std::filesystem::path m_path;
};

// Writes `content` to `path`, creating or truncating it. Throws on failure.
void write_file(const std::filesystem::path& path, std::string_view content);
// Reads a whole file. Throws on failure.
std::string read_file(const std::filesystem::path& path);

}  // namespace fbfs::test
