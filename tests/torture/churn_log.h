// The checker of fbfs_churn's logs (churn.cpp): replays what each worker logged to know what
// every path must hold after the daemon was killed, and compares a tree with it.
//
// A path whose last operation was logged `done` must hold exactly what that operation left. A
// worker's last operation, begun but not done when the daemon died, may have happened or not,
// and nothing in between (docs/RELIABILITY.md): a rewrite or patch leaves the old or the new
// bytes, a new file is absent, empty (created, never closed) or whole, a rename left both names
// as they were or moved the file, an unlink left the file or removed it.
//
// Pure functions over values; thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace fbfs::test {

struct FileState {
    std::string sha256;  // hex
    std::uint64_t size = 0;
    bool operator==(const FileState&) const = default;
};

// Regular files by path relative to the tree's root.
using FileTree = std::map<std::string, FileState>;

// A worker's operation that began and was not logged done: the states its paths may be in.
struct PendingOp {
    std::string worker;
    std::string line;  // the `begin` line
    std::vector<std::map<std::string, std::optional<FileState>>> outcomes;
};

// A call that failed in a worker, and stopped it.
struct ChurnFailure {
    std::string worker;
    int error = 0;
    std::int64_t monotonic_ns = 0;  // when, on CLOCK_MONOTONIC (std::chrono::steady_clock)
    std::string what;               // "close w0-1/f3"
};

struct ChurnExpectation {
    FileTree settled;                     // every file as the done operations left it
    std::set<std::string> directories;    // made by a done mkdir
    std::vector<PendingOp> pending;       // at most one per worker
    std::vector<ChurnFailure> failures;   // where each worker stopped
    std::vector<std::string> mismatches;  // reads that gave other bytes than were written
    std::uint64_t done = 0;               // operations logged done, all workers
};

FileState state_of(const std::string& content);

// Replays every *.log in `logs` over `initial` (the files there before the workload ran).
// Throws std::runtime_error on a line it cannot parse.
ChurnExpectation replay_churn_logs(const std::filesystem::path& logs, const FileTree& initial);

// Every regular file under `root`, read and hashed. Throws on a read error, or (naming it) on an
// entry that is neither a regular file nor a directory.
FileTree read_tree(const std::filesystem::path& root);

// One line per way `actual` breaks `expected`; empty if it keeps it.
std::vector<std::string> compare_churn(const ChurnExpectation& expected, const FileTree& actual,
                                       const std::filesystem::path& root);

}  // namespace fbfs::test
