#include "tests/support/tree.h"

#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <set>

#include "store/base/object_id.h"
#include "tests/support/posix.h"

namespace fbfs::test {

namespace fs = std::filesystem;

std::string random_bytes(std::uint64_t seed, std::size_t size) {
    std::string out(size, '\0');
    std::uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
    for (std::size_t i = 0; i < size; i += 8) {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        std::memcpy(out.data() + i, &z, std::min<std::size_t>(8, size - i));
    }
    return out;
}

std::string file_type(mode_t mode) {
    if (S_ISREG(mode)) {
        return "file";
    }
    if (S_ISDIR(mode)) {
        return "dir";
    }
    if (S_ISLNK(mode)) {
        return "symlink";
    }
    if (S_ISFIFO(mode)) {
        return "fifo";
    }
    return "other";
}

std::size_t count_files(const fs::path& dir) {
    std::size_t count = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        count += it->is_regular_file() ? 1 : 0;
    }
    return count;
}

fs::path object_path(const fs::path& store, const ObjectId& id) {
    std::string hex = id.hex();
    return store / "objects" / hex.substr(0, 2) / hex.substr(2);
}

Snapshot snapshot(const fs::path& root, Times times) {
    Snapshot out;
    auto describe = [&](const fs::path& path, const std::string& relative) {
        struct stat st = lstat_of(path);
        std::string line = file_type(st.st_mode) + " mode=" + std::to_string(permissions(st)) +
                           " owner=" + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) +
                           " nlink=" + std::to_string(st.st_nlink);
        if (times == Times::kept) {
            line += " mtime=" + time_text(st.st_mtim);
        }
        if (S_ISREG(st.st_mode)) {
            line += " size=" + std::to_string(st.st_size) +
                    " sha256=" + ObjectId::of(read_path(path)).hex();
        } else if (S_ISLNK(st.st_mode)) {
            line += " size=" + std::to_string(st.st_size) + " target=" + readlink_of(path);
        }
        for (const auto& [name, value] : xattrs_of(path)) {
            line += " " + name + "=" + ObjectId::of(value).hex().substr(0, 16);
        }
        out[relative] = line;
    };
    describe(root, ".");
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        describe(entry.path(), entry.path().lexically_relative(root).string());
    }
    return out;
}

void check_same_tree(const Snapshot& expected, const Snapshot& actual) {
    std::set<std::string> paths;
    for (const auto& [path, line] : expected) {
        paths.insert(path);
    }
    for (const auto& [path, line] : actual) {
        paths.insert(path);
    }
    for (const auto& path : paths) {
        INFO("path: " << path);
        auto e = expected.find(path);
        auto a = actual.find(path);
        CHECK((a == actual.end() ? std::string("<missing>") : a->second) ==
              (e == expected.end() ? std::string("<missing>") : e->second));
    }
}

}  // namespace fbfs::test
