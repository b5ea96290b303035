// The stress tool's picture of one process's subtree: which directories, regular files (with
// which of their names are hard links of one file) and symlinks it holds, updated after every
// operation that succeeded. Operations pick their targets from it, so a seed gives the same
// operations, in the same order, on any filesystem that behaves the same.
//
// Also the seeded random numbers (splitmix64) and the digest (FNV-1a, 64 bits) every outcome is
// folded into. Paths are relative to the process's subtree; "" is its root.
//
// Not thread-safe; each process owns one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace fbfs::stress {

class Rng {
public:
    explicit Rng(std::uint64_t seed) : m_state(seed) {}
    std::uint64_t next();
    // A number in [0, bound); 0 when bound is 0.
    std::uint64_t below(std::uint64_t bound) { return bound == 0 ? 0 : next() % bound; }
    bool chance(unsigned percent) { return below(100) < percent; }

private:
    std::uint64_t m_state;
};

// Deterministic bytes for (seed, offset): what a write of that seed puts there.
void fill_bytes(std::uint64_t seed, char* out, std::size_t size);

class Digest {
public:
    void add(std::string_view bytes);
    void add(std::uint64_t value);
    std::uint64_t value() const { return m_hash; }

private:
    std::uint64_t m_hash = 0xcbf29ce484222325ull;
};

// "a/b" from "a" and "b"; "b" from "" and "b".
std::string join(std::string_view dir, std::string_view name);
// The path to hand a system call: "." for the root.
const char* sys_path(const std::string& path);

struct FileName {
    std::string path;
    std::uint64_t node = 0;  // names of one file (hard links) share a node
};

class Model {
public:
    // Reads what `root` (the process's subtree, which must exist) holds already: a seeded
    // source tree. Directories found there are never moved (an overlay refuses to move a
    // directory with lower entries). Returns false if the tree cannot be read.
    bool scan(const std::string& root);

    std::vector<std::string> dirs{""};
    std::vector<FileName> files;
    std::vector<std::string> symlinks;

    // A fresh name: "<prefix><n>".
    std::string new_name(char prefix) { return prefix + std::to_string(m_next_name++); }
    std::uint64_t new_node() { return m_next_node++; }

    bool movable(const std::string& dir) const { return !dir.empty() && !m_initial.contains(dir); }
    // True if any entry lies under `dir`.
    bool has_children(const std::string& dir) const;
    std::size_t depth(const std::string& path) const;
    // How many directory levels lie below `dir` (0 for one with no subdirectories).
    std::size_t height(const std::string& dir) const;

    // The model after each successful operation.
    void remove_dir(const std::string& dir);
    void remove_file(std::size_t index);
    void remove_symlink(std::size_t index);
    // A name of a file: replaced if present (its other links stay).
    void rename_file(std::size_t index, const std::string& to);
    void rename_symlink(std::size_t index, const std::string& to);
    // `from` and everything under it move to `to` (an empty directory there is replaced).
    void rename_dir(const std::string& from, const std::string& to);
    // The index of the file named `path`, or files.size().
    std::size_t find_file(const std::string& path) const;
    std::size_t find_symlink(const std::string& path) const;

private:
    std::unordered_set<std::string> m_initial;
    std::uint64_t m_next_name = 0;
    std::uint64_t m_next_node = 0;
};

}  // namespace fbfs::stress
