// Parallel stress through a mount (issue 11's campaign, item 3, in a short version; the full size
// is scripts/torture-stress). fbfs_stress runs eight seeded processes of mixed operations —
// writes, appends, truncations, renames, hard links, symlinks, mmap writes, fsyncs, directories,
// modes, times — each in its own subtree, once through a mount and once in a directory of the
// host filesystem (ext4 here). The two must agree on:
//   - every outcome each process saw (errno, listings, bytes read back, attributes), which the
//     tool folds into one digest per run;
//   - the resulting trees: every path with its type, mode, owner, link count, size, content
//     (SHA-256) and symlink target; again after a remount.
// Times are left out: they are when each operation ran, which differs between the two runs.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/mount.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tree.h"

namespace fs = std::filesystem;
using fbfs::test::check_same_tree;
using fbfs::test::Mount;
using fbfs::test::run;
using fbfs::test::snapshot;
using fbfs::test::TempDir;
using fbfs::test::Times;

namespace {

constexpr unsigned k_processes = 8;
// Short enough for the suite: 8 × 400 operations take a few seconds through an overlay.
const std::vector<std::string> k_stress_args = {"-p", "8", "-n", "400", "-f", "2000", "-s", "11"};
// The seeded source tree an overlay starts from (and the host directory too).
const std::vector<std::string> k_populate_args = {"--populate", "-p", "8", "-f", "2000", "-s", "5"};

// Runs fbfs_stress with `args` on `dir`, logging each process's operations under `logs`.
// Returns the digest line it printed.
std::string stress(std::vector<std::string> args, const fs::path& dir, const fs::path& logs) {
    fs::create_directories(logs);
    args.insert(args.begin(), FBFS_STRESS_BINARY);
    args.insert(args.end(), {"-l", logs.string(), dir.string()});
    auto result = run(args);
    INFO(result.out << result.err);
    REQUIRE(result.status == 0);
    auto at = result.out.find("digest ");
    REQUIRE(at != std::string::npos);
    return result.out.substr(at, result.out.find('\n', at) - at);
}

void populate(const fs::path& dir) {
    fs::create_directories(dir);
    auto args = k_populate_args;
    args.insert(args.begin(), FBFS_STRESS_BINARY);
    args.push_back(dir.string());
    auto result = run(args);
    INFO(result.out << result.err);
    REQUIRE(result.status == 0);
}

// The first operation whose outcome differs between two runs' logs of process `index`, or "".
std::string first_difference(const fs::path& expected, const fs::path& actual, unsigned index) {
    std::string name = "p" + std::to_string(index) + ".log";
    std::ifstream e(expected / name);
    std::ifstream a(actual / name);
    for (std::string le, la; std::getline(e, le);) {
        if (!std::getline(a, la) || la != le) {
            return name + ": expected '" + le + "', got '" + la + "'";
        }
    }
    return "";
}

// Both runs saw the same outcomes; if not, says where each process first went another way.
void check_same_outcomes(const std::string& host, const std::string& mount, const TempDir& tmp) {
    if (host != mount) {
        for (unsigned i = 0; i < k_processes; ++i) {
            UNSCOPED_INFO(first_difference(tmp / "logs-host", tmp / "logs-mount", i));
        }
    }
    CHECK(mount == host);
}

}  // namespace

TEST_CASE(
    "Stress: eight processes of mixed operations leave the same tree through a mount as on "
    "the host filesystem",
    "[fuse]") {
    TempDir tmp;
    Mount mount(tmp / "store", tmp / "mnt");
    fs::create_directories(tmp / "host");
    auto through_mount = stress(k_stress_args, mount.path(), tmp / "logs-mount");
    auto on_host = stress(k_stress_args, tmp / "host", tmp / "logs-host");
    check_same_outcomes(on_host, through_mount, tmp);
    const auto expected = snapshot(tmp / "host", Times::left_out);
    check_same_tree(expected, snapshot(mount.path(), Times::left_out));
    mount.remount();
    check_same_tree(expected, snapshot(mount.path(), Times::left_out));
}

TEST_CASE(
    "Stress: eight processes of mixed operations over a seeded source leave the same tree "
    "through an overlay as on the host filesystem, and the source as it was",
    "[fuse]") {
    TempDir tmp;
    populate(tmp / "source");
    populate(tmp / "host");
    const auto source_before = snapshot(tmp / "source");
    Mount mount(tmp / "store", tmp / "mnt", {"--source", (tmp / "source").string()});
    auto through_mount = stress(k_stress_args, mount.path(), tmp / "logs-mount");
    auto on_host = stress(k_stress_args, tmp / "host", tmp / "logs-host");
    check_same_outcomes(on_host, through_mount, tmp);
    const auto expected = snapshot(tmp / "host", Times::left_out);
    check_same_tree(expected, snapshot(mount.path(), Times::left_out));
    mount.remount();
    check_same_tree(expected, snapshot(mount.path(), Times::left_out));
    mount.unmount();
    check_same_tree(source_before, snapshot(tmp / "source"));
}
