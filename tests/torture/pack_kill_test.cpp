// The crash campaign, part 2: kill -9 of `fbfs pack` and of `fbfs unpack` at a random moment
// of their run. What is promised (docs/RELIABILITY.md):
//   - pack: the store is as it was (same `fbfs stat --digest`, `fbfs verify` clean, its tmp/
//     empty) and the output file is absent or complete: it unpacks into a fresh store with the
//     same digest, and that store verifies; the next pack to the same output removes the temp
//     file the killed one left beside it;
//   - unpack: the store's digest is the one before or the one after, never another, `fbfs
//     verify` is clean, and unpacking again completes with the digest after and removes the
//     temp files the killed one left in the store's tmp/.
// The moment is drawn from 0 to 1.2 times an uninterrupted run's time, measured first, or, for
// every other trial, from 0.85 to 1.15 times it: around the end, where it all commits.
// FBFS_TORTURE_PACK_TRIALS trials of each (default 2); scripts/torture runs 20.
#include <catch2/catch.hpp>
#include <csignal>
#include <thread>

#include "tests/support/mount.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/torture/torture.h"

namespace fbfs::test {

namespace {

namespace fs = std::filesystem;
using std::chrono::microseconds;
using Clock = std::chrono::steady_clock;

// Files for a volume: `count` of them, some random (incompressible), some text-like, some the
// same bytes under two names, about `count` * 100 KiB in all.
void fill_volume(const fs::path& store, const std::string& volume, int count,
                 std::mt19937_64& random, const fs::path& mountpoint) {
    Mount mount(store, mountpoint, {"--volume", volume});
    std::string text;
    for (int i = 0; i < 4000; ++i) {
        text += "line " + std::to_string(random() % 100000) + " of a build log\n";
    }
    for (int i = 0; i < count; ++i) {
        std::string dir = "d" + std::to_string(i % 7);
        fs::create_directories(mount.path() / dir);
        std::string content;
        if (i % 3 == 0) {
            content.resize(random() % (256 << 10));
            for (auto& c : content) {
                c = static_cast<char>(random());
            }
        } else {
            content = text.substr(random() % 1000) + std::to_string(i);
        }
        write_file(mount.path() / dir / ("f" + std::to_string(i)), content);
        if (i % 10 == 0) {
            write_file(mount.path() / dir / ("copy" + std::to_string(i)), content);
        }
    }
    mount.unmount();
}

// The problems of a store that should hold `digest`, verify clean and have nothing in tmp/.
void check_store(const fs::path& store, const std::string& digest, const std::string& which,
                 std::vector<std::string>& problems) {
    if (auto now = store_digest(store); now != digest) {
        problems.push_back(which + " has digest " + now + ", not " + digest);
    }
    if (auto verified = verify_problems(store); !verified.empty()) {
        problems.push_back(which + ": " + verified);
    }
}

// A store of two volumes, and a pack of another state of it (one volume changed, one added),
// with the digests before and after unpacking that pack into it.
struct Fixture {
    TempDir tmp;
    fs::path before = tmp / "before";
    fs::path pack = tmp / "after.pack";
    std::string digest_before;
    std::string digest_after;

    explicit Fixture(std::uint64_t seed) {
        std::mt19937_64 random(seed);
        fill_volume(before, "default", 300, random, tmp / "mnt");
        fill_volume(before, "keep", 40, random, tmp / "mnt");
        fs::path after = tmp / "after";
        fill_volume(after, "default", 300, random, tmp / "mnt");
        fill_volume(after, "tools", 100, random, tmp / "mnt");
        timed_run({FBFS_BINARY, "pack", "--store", after.string(), "-o", pack.string()});
        digest_before = store_digest(before);
        fs::path reference = copy_store(before, tmp / "reference");
        timed_run({FBFS_BINARY, "unpack", "--store", reference.string(), pack.string()});
        digest_after = store_digest(reference);
        fs::remove_all(reference);
        fs::remove_all(after);
    }
};

std::vector<std::string> pack_trial(const Fixture& fixture, const fs::path& dir, microseconds delay,
                                    Tally& tally) {
    std::vector<std::string> problems;
    fs::create_directories(dir / "out");
    auto output = dir / "out" / "store.pack";
    bool finished = run_and_kill(
        {FBFS_BINARY, "pack", "--store", fixture.before.string(), "-o", output.string()}, delay,
        dir / "pack.log", problems);
    tally.count(finished ? "finished before the kill" : "killed while running");
    check_store(fixture.before, fixture.digest_before, "the packed store", problems);
    for (const auto& name : names_in_dir(fixture.before / "tmp")) {
        problems.push_back("the packed store's tmp/ holds " + name);
    }
    if (finished && !fs::exists(output)) {
        problems.push_back("pack exited 0 but wrote no " + output.string());
    }
    if (fs::exists(output)) {
        tally.count("pack file complete");
        auto check = dir / "check";
        auto unpacked = run_cli({"unpack", "--store", check.string(), output.string()});
        if (unpacked.status != 0) {
            problems.push_back("the pack file the killed pack left does not unpack: " +
                               unpacked.err);
        } else {
            check_store(check, fixture.digest_before, "the store unpacked from it", problems);
        }
    } else {
        tally.count("pack file absent");
    }
    auto beside = names_in_dir(dir / "out");
    tally.count("temp files left beside the output", beside.size() - (fs::exists(output) ? 1 : 0));
    auto next = run_cli({"pack", "--store", fixture.before.string(), "-o", output.string()});
    if (next.status != 0) {
        problems.push_back("the next pack to the same output failed: " + next.err);
    }
    for (const auto& name : names_in_dir(dir / "out")) {
        if (name != output.filename().string()) {
            problems.push_back("the next pack to the same output left " + name + " beside it");
        }
    }
    return problems;
}

std::vector<std::string> unpack_trial(const Fixture& fixture, const fs::path& dir,
                                      microseconds delay, Tally& tally) {
    std::vector<std::string> problems;
    auto store = copy_store(fixture.before, dir / "store");
    bool finished =
        run_and_kill({FBFS_BINARY, "unpack", "--store", store.string(), fixture.pack.string()},
                     delay, dir / "unpack.log", problems);
    tally.count(finished ? "finished before the kill" : "killed while running");
    auto digest = store_digest(store);
    if (digest == fixture.digest_before) {
        tally.count("store as before");
    } else if (digest == fixture.digest_after) {
        tally.count("store as after");
    } else {
        problems.push_back("the store's digest is " + digest + ": neither the one before (" +
                           fixture.digest_before + ") nor after (" + fixture.digest_after + ")");
    }
    if (finished && digest != fixture.digest_after) {
        problems.push_back("unpack exited 0 but the store is not as after");
    }
    if (auto verified = verify_problems(store); !verified.empty()) {
        problems.push_back("after the kill: " + verified);
    }
    tally.count("unpack work directories the kill left in tmp/",
                names_in_dir(store / "tmp").size());
    auto again = run_cli({"unpack", "--store", store.string(), fixture.pack.string()});
    if (again.status != 0) {
        problems.push_back("unpacking again after the kill failed: " + again.err);
    } else {
        check_store(store, fixture.digest_after, "the store unpacked again", problems);
    }
    if (auto left = names_in_dir(store / "tmp"); !left.empty()) {
        problems.push_back(std::to_string(left.size()) + " temp files (tmp/" + left.front() +
                           "…) are still in the store after the next unpack");
    }
    return problems;
}

}  // namespace

TEST_CASE("fbfs pack killed at random leaves the store as it was and no partial pack",
          "[fuse][torture]") {
    std::uint64_t seed = base_seed();
    Fixture fixture(seed);
    TempDir timing;
    auto full = timed_run({FBFS_BINARY, "pack", "--store", fixture.before.string(), "-o",
                           (timing / "full.pack").string()});
    run_trials("pack killed", full, seed, trials_from_env("FBFS_TORTURE_PACK_TRIALS", 2),
               [&](const fs::path& dir, microseconds delay, Tally& tally) {
                   return pack_trial(fixture, dir, delay, tally);
               });
}

TEST_CASE("fbfs unpack killed at random leaves the store as before or as after",
          "[fuse][torture]") {
    std::uint64_t seed = base_seed();
    Fixture fixture(seed);
    TempDir timing;
    auto store = copy_store(fixture.before, timing / "store");
    auto full =
        timed_run({FBFS_BINARY, "unpack", "--store", store.string(), fixture.pack.string()});
    run_trials("unpack killed", full, seed, trials_from_env("FBFS_TORTURE_PACK_TRIALS", 2),
               [&](const fs::path& dir, microseconds delay, Tally& tally) {
                   return unpack_trial(fixture, dir, delay, tally);
               });
}

}  // namespace fbfs::test
