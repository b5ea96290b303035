// The crash campaign, part 1: kill -9 of the mount daemon while fbfs_churn (churn.cpp) writes,
// rewrites, renames and deletes files through the mount, at a random moment; then `fbfs umount`,
// mount again, and check what the store promises (docs/RELIABILITY.md):
//   - every file whose close (or rename, unlink) returned before the kill is exactly as it was
//     left; the operation a worker was in when the daemon died left its before or its after;
//   - the workers saw only the dead connection's errors, and read back what they wrote;
//   - the next mount leaves no temp file in the store's tmp/; `fbfs verify` is clean.
// Half the trials mount with --source, the workers' directories starting as source files.
// FBFS_TORTURE_TRIALS trials (default 4); scripts/torture runs 100.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <regex>
#include <thread>

#include "fs/process.h"
#include "tests/support/mount.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/torture/churn_log.h"
#include "tests/torture/torture.h"

namespace fbfs::test {

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr int k_processes = 2;
constexpr int k_threads = 2;

// A random file of up to `limit` bytes.
std::string random_bytes(std::mt19937_64& random, std::size_t limit) {
    std::string out(random() % (limit + 1), '\0');
    for (auto& c : out) {
        c = static_cast<char>(random());
    }
    return out;
}

// Source files for an overlay trial: each worker's directory starts with a few.
FileTree make_source(const fs::path& source, std::mt19937_64& random) {
    FileTree files;
    for (int p = 0; p < k_processes; ++p) {
        for (int t = 0; t < k_threads; ++t) {
            std::string dir = "w" + std::to_string(p) + "-" + std::to_string(t);
            fs::create_directories(source / dir);
            for (int i = 0; i < 6; ++i) {
                std::string rel = dir + "/l" + std::to_string(i);
                std::string content = random_bytes(random, 200000);
                write_file(source / rel, content);
                files[rel] = state_of(content);
            }
        }
    }
    return files;
}

RunResult mount_cli(const fs::path& store, const fs::path& mountpoint,
                    const std::vector<std::string>& extra) {
    std::vector<std::string> args{"mount", "--store", store.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(mountpoint.string());
    return run_cli(args);
}

std::string said(const std::string& command, const RunResult& result) {
    return command + " exited " + std::to_string(result.status) + ": " + result.err + result.out;
}

// Objects in the pool that no inode names (left by a kill between publishing an object and
// the commit that would have named it): counted, not promised away.
std::uint64_t unreferenced_objects(const fs::path& store) {
    auto result = run_cli({"stat", "--store", store.string()});
    std::smatch match;
    static const std::regex line(R"(objects (\d+) \((\d+) referenced\))");
    if (!std::regex_search(result.out, match, line)) {
        return 0;
    }
    return std::stoull(match[1]) - std::stoull(match[2]);
}

// The checks after the kill, on a fresh mount of the store.
// Problems with the calls that failed in the workers: none may fail before the kill, and after
// it only with what a dead connection gives.
void check_failures(const ChurnExpectation& expected, std::chrono::steady_clock::time_point killed,
                    std::vector<std::string>& problems) {
    auto killed_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(killed.time_since_epoch()).count();
    for (const auto& failure : expected.failures) {
        std::string text =
            failure.worker + ": " + failure.what + ": " + std::strerror(failure.error);
        if (failure.monotonic_ns < killed_ns) {
            problems.push_back("a call failed before the daemon was killed: " + text);
        }
        // ENOTCONN: the connection is gone; ECONNABORTED: a request it took with it; EIO: the
        // kernel's word for data it could not write back (close, fsync).
        if (failure.error != ENOTCONN && failure.error != ECONNABORTED && failure.error != EIO) {
            problems.push_back("a call failed with another error than a dead connection's: " +
                               text);
        }
    }
}

void check_recovered(const fs::path& store, const fs::path& mountpoint, const fs::path& logs,
                     const FileTree& initial, const std::vector<std::string>& extra,
                     std::chrono::steady_clock::time_point killed,
                     std::vector<std::string>& problems, Tally& tally) {
    auto expected = replay_churn_logs(logs, initial);
    tally.count("operations done before the kill", expected.done);
    tally.count("operations cut by the kill", expected.pending.size());
    check_failures(expected, killed, problems);
    for (const auto& mismatch : expected.mismatches) {
        problems.push_back("a worker read back other bytes than it wrote: " + mismatch);
    }
    tally.count("staging files the kill left", names_in_dir(store / "tmp").size());
    auto remounted = mount_cli(store, mountpoint, extra);
    if (remounted.status != 0) {
        problems.push_back(said("fbfs mount after the kill", remounted));
        return;
    }
    for (const auto& problem : compare_churn(expected, read_tree(mountpoint), mountpoint)) {
        problems.push_back(problem);
    }
    for (const auto& name : names_in_dir(store / "tmp")) {
        problems.push_back("the next mount left the temp file tmp/" + name + " in the store");
    }
    if (auto umount = run_cli({"umount", mountpoint.string()}); umount.status != 0) {
        problems.push_back(said("fbfs umount of the new mount", umount));
    }
    if (auto verified = verify_problems(store); !verified.empty()) {
        problems.push_back(verified);
    }
    tally.count("unreferenced objects left", unreferenced_objects(store));
}

// One trial: mount, churn, kill the daemon after `delay`, recover, check. Returns the problems.
std::vector<std::string> kill_trial(std::uint64_t seed, bool overlay, milliseconds delay,
                                    Tally& tally) {
    TempDir tmp;
    auto store = tmp / "store";
    auto mountpoint = tmp / "mnt";
    auto logs = tmp / "logs";
    fs::create_directories(mountpoint);
    fs::create_directories(logs);
    std::mt19937_64 random(seed);
    FileTree initial;
    std::vector<std::string> extra;
    if (overlay) {
        initial = make_source(tmp / "src", random);
        extra = {"--source", (tmp / "src").string()};
    }
    MountpointGuard guard(mountpoint);
    if (auto mounted = mount_cli(store, mountpoint, extra); mounted.status != 0) {
        return {said("fbfs mount", mounted)};
    }
    auto pid = daemon_pid(mountpoint);
    if (!pid) {
        return {"no fbfs daemon serves " + mountpoint.string() + " after fbfs mount"};
    }
    std::vector<std::string> problems;
    std::chrono::steady_clock::time_point killed;
    {
        Child churn({FBFS_CHURN, mountpoint.string(), logs.string(), std::to_string(seed),
                     std::to_string(k_processes), std::to_string(k_threads)},
                    tmp / "churn.out");
        std::this_thread::sleep_for(delay);
        if (auto early = churn.wait(milliseconds(0))) {
            problems.push_back("fbfs_churn stopped before the kill, status " +
                               std::to_string(*early) + ": " + read_file(tmp / "churn.out"));
        }
        killed = std::chrono::steady_clock::now();
        ::kill(*pid, SIGKILL);  // the daemon this trial's fbfs mount started
        if (!wait_until_exited(*pid, std::chrono::seconds(20))) {
            problems.push_back("the daemon " + std::to_string(*pid) + " outlived SIGKILL by 20 s");
        }
        auto status = churn.wait(std::chrono::seconds(60));
        if (!status) {
            problems.push_back("fbfs_churn still ran 60 s after the daemon died");
        } else if (*status != 0) {
            problems.push_back("fbfs_churn exited " + std::to_string(*status) + ": " +
                               read_file(tmp / "churn.out"));
        }
    }
    if (auto umount = run_cli({"umount", mountpoint.string()}); umount.status != 0) {
        problems.push_back(said("fbfs umount of the dead mount", umount));
    } else if (!mounts_at(mountpoint).empty()) {
        problems.push_back("fbfs umount of the dead mount left it mounted");
    }
    if (mounts_at(mountpoint).empty()) {
        check_recovered(store, mountpoint, logs, initial, extra, killed, problems, tally);
    }
    return problems;
}

}  // namespace

TEST_CASE("a daemon killed at random during file churn loses no closed file", "[fuse][torture]") {
    int trials = trials_from_env("FBFS_TORTURE_TRIALS", 4);
    std::uint64_t seed = base_seed();
    Tally tally("daemon kill during file churn", seed);
    std::mt19937_64 random(seed);
    for (int i = 0; i < trials; ++i) {
        std::uint64_t trial_seed = random() % 1000000000;
        bool overlay = i % 2 == 1;
        auto delay = std::chrono::duration_cast<milliseconds>(
            random_between(random, milliseconds(20), milliseconds(2500)));
        std::string what = "seed " + std::to_string(trial_seed) + (overlay ? ", --source" : "") +
                           ", kill after " + std::to_string(delay.count()) + " ms";
        tally.trial(what, [&] { return kill_trial(trial_seed, overlay, delay, tally); });
    }
}

}  // namespace fbfs::test
