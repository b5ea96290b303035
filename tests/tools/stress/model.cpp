#include "tests/tools/stress/model.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <utility>

namespace fbfs::stress {

std::uint64_t Rng::next() {
    std::uint64_t z = (m_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fill_bytes(std::uint64_t seed, char* out, std::size_t size) {
    Rng rng(seed);
    for (std::size_t i = 0; i < size; i += 8) {
        std::uint64_t word = rng.next();
        std::memcpy(out + i, &word, std::min<std::size_t>(8, size - i));
    }
}

void Digest::add(std::string_view bytes) {
    for (unsigned char c : bytes) {
        m_hash = (m_hash ^ c) * 0x100000001b3ull;
    }
    add(static_cast<std::uint64_t>(bytes.size()));
}

void Digest::add(std::uint64_t value) {
    for (int i = 0; i < 8; ++i) {
        m_hash = (m_hash ^ ((value >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    }
}

std::string join(std::string_view dir, std::string_view name) {
    return dir.empty() ? std::string(name) : std::string(dir) + "/" + std::string(name);
}

const char* sys_path(const std::string& path) {
    return path.empty() ? "." : path.c_str();
}

namespace {

// The names in `dir`, sorted: readdir's order differs between filesystems, the model's must not.
bool sorted_names(const std::string& dir, std::vector<std::string>& names) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        return false;
    }
    while (dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
            names.emplace_back(e->d_name);
        }
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return true;
}

// The number that ends `name` ("f12" → 12), or 0.
std::uint64_t name_number(std::string_view name) {
    std::size_t digits = name.find_last_not_of("0123456789") + 1;
    std::uint64_t n = 0;
    for (char c : name.substr(digits)) {
        n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return n;
}

}  // namespace

bool Model::scan(const std::string& root) {
    std::map<std::pair<dev_t, ino_t>, std::uint64_t> nodes;
    for (std::size_t next = 0; next < dirs.size(); ++next) {
        std::string dir = dirs[next];
        std::vector<std::string> names;
        if (!sorted_names(join(root, dir), names)) {
            return false;
        }
        for (const auto& name : names) {
            std::string path = join(dir, name);
            struct stat st {};
            if (::lstat(join(root, path).c_str(), &st) != 0) {
                return false;
            }
            m_next_name = std::max(m_next_name, name_number(name) + 1);
            if (S_ISDIR(st.st_mode)) {
                dirs.push_back(path);
                m_initial.insert(path);
            } else if (S_ISLNK(st.st_mode)) {
                symlinks.push_back(path);
            } else if (S_ISREG(st.st_mode)) {
                auto [it, fresh] = nodes.try_emplace({st.st_dev, st.st_ino}, m_next_node);
                m_next_node += fresh ? 1 : 0;
                files.push_back({path, it->second});
            }
        }
    }
    return true;
}

bool Model::has_children(const std::string& dir) const {
    std::string prefix = dir + "/";
    auto under = [&](const std::string& path) { return dir.empty() || path.starts_with(prefix); };
    return std::any_of(dirs.begin(), dirs.end(),
                       [&](const auto& d) { return !d.empty() && under(d) && d != dir; }) ||
           std::any_of(files.begin(), files.end(), [&](const auto& f) { return under(f.path); }) ||
           std::any_of(symlinks.begin(), symlinks.end(), under);
}

std::size_t Model::depth(const std::string& path) const {
    return path.empty() ? 0
                        : 1 + static_cast<std::size_t>(std::count(path.begin(), path.end(), '/'));
}

std::size_t Model::height(const std::string& dir) const {
    std::size_t base = depth(dir);
    std::size_t deepest = base;
    for (const auto& d : dirs) {
        if (d.starts_with(dir + "/")) {
            deepest = std::max(deepest, depth(d));
        }
    }
    return deepest - base;
}

void Model::remove_dir(const std::string& dir) {
    dirs.erase(std::find(dirs.begin(), dirs.end(), dir));
    m_initial.erase(dir);
}

void Model::remove_file(std::size_t index) {
    files.erase(files.begin() + static_cast<std::ptrdiff_t>(index));
}

void Model::remove_symlink(std::size_t index) {
    symlinks.erase(symlinks.begin() + static_cast<std::ptrdiff_t>(index));
}

std::size_t Model::find_file(const std::string& path) const {
    auto it =
        std::find_if(files.begin(), files.end(), [&](const auto& f) { return f.path == path; });
    return static_cast<std::size_t>(it - files.begin());
}

std::size_t Model::find_symlink(const std::string& path) const {
    return static_cast<std::size_t>(std::find(symlinks.begin(), symlinks.end(), path) -
                                    symlinks.begin());
}

void Model::rename_file(std::size_t index, const std::string& to) {
    std::size_t replaced = find_file(to);
    if (replaced < files.size()) {
        if (files[replaced].node == files[index].node) {
            return;  // two links of one file: rename(2) does nothing
        }
        remove_file(replaced);
        index -= replaced < index ? 1 : 0;
    }
    files[index].path = to;
}

void Model::rename_symlink(std::size_t index, const std::string& to) {
    std::size_t replaced = find_symlink(to);
    if (replaced == index) {
        return;  // onto its own name: rename(2) does nothing
    }
    if (replaced < symlinks.size()) {
        remove_symlink(replaced);
        index -= replaced < index ? 1 : 0;
    }
    symlinks[index] = to;
}

void Model::rename_dir(const std::string& from, const std::string& to) {
    if (std::find(dirs.begin(), dirs.end(), to) != dirs.end()) {
        remove_dir(to);  // an empty directory, replaced
    }
    std::string prefix = from + "/";
    auto move = [&](std::string& path) {
        if (path == from) {
            path = to;
        } else if (path.starts_with(prefix)) {
            path = to + path.substr(from.size());
        }
    };
    for (auto& d : dirs) {
        move(d);
    }
    for (auto& f : files) {
        move(f.path);
    }
    for (auto& s : symlinks) {
        move(s);
    }
}

}  // namespace fbfs::stress
