// The crash campaign, part 3: kill -9 of `fbfs volume rm`, `fbfs volume cp` and `fbfs gc` at a
// random moment of their run. What is promised (docs/RELIABILITY.md): the store's digest is the
// one before or the one after, never another; `fbfs verify` is clean; and once the command has
// run again (if the kill came first) or anything has reaped the objects it freed (a gc, a mount),
// the pool holds exactly what an uninterrupted run leaves: no object leaks, none is lost.
// FBFS_TORTURE_PACK_TRIALS trials of each (default 2); scripts/torture runs 20.
#include <dirent.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <csignal>

#include "store/meta/snapshot_tables.h"
#include "store/meta/store.h"
#include "store/meta/volume_times.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/torture/torture.h"

namespace fbfs::test {

namespace {

namespace fs = std::filesystem;
using std::chrono::microseconds;

// A volume of `files` files in 100 directories, their bytes `prefix` and one of `distinct`
// numbers, written in one transaction (a mount would take minutes for this many).
void put_volume(Store& store, const std::string& name, int files, int distinct,
                const std::string& prefix) {
    VolumeSnapshot s;
    s.name = name;
    InodeRecord dir;
    dir.mode = S_IFDIR | 0755;
    dir.nlink = 2 + 100;
    s.inodes[k_root_inode] = dir;
    dir.nlink = 2;
    for (InodeNumber d = 0; d < 100; ++d) {
        s.inodes[2 + d] = dir;
        s.entries.push_back(
            {k_root_inode, "d" + std::to_string(d), {2 + d, static_cast<std::uint8_t>(DT_DIR)}});
    }
    std::vector<std::pair<ObjectId, std::uint64_t>> objects;
    for (int i = 0; i < distinct; ++i) {
        auto put = store.pool().put_bytes(prefix + std::to_string(i));
        REQUIRE(put);
        objects.emplace_back(put->id, put->size);
    }
    for (int i = 0; i < files; ++i) {
        const auto& [id, size] = objects[static_cast<std::size_t>(i % distinct)];
        InodeRecord file;
        file.mode = S_IFREG | 0644;
        file.nlink = 1;
        file.size = size;
        file.object = id;
        InodeNumber ino = 102 + static_cast<InodeNumber>(i);
        s.inodes[ino] = file;
        s.entries.push_back({2 + static_cast<InodeNumber>(i % 100),
                             "f" + std::to_string(i),
                             {ino, static_cast<std::uint8_t>(DT_REG)}});
    }
    std::sort(s.entries.begin(), s.entries.end(), [](const auto& a, const auto& b) {
        return std::tie(a.parent, a.name) < std::tie(b.parent, b.name);
    });
    s.next_inode = 102 + static_cast<InodeNumber>(files);
    REQUIRE(
        store.env().write([&](LmdbTxn& txn) { return replace_volume(txn, store.tables(), s); }));
}

std::uint64_t stored_bytes(const fs::path& store) {
    auto stat = run_cli({"stat", "--json", "--store", store.string()});
    if (stat.status != 0) {
        throw std::runtime_error("fbfs stat failed: " + stat.err);
    }
    auto at = stat.out.find("\"stored_bytes\":");
    return std::stoull(stat.out.substr(at + 15));
}

// The objects freed but not yet deleted go: a gc that drops nothing reaps them.
void reap(const fs::path& store) {
    auto gc = run_cli({"gc", "--older-than", "5000w", "--store", store.string()});
    if (gc.status != 0) {
        throw std::runtime_error("fbfs gc failed: " + gc.err);
    }
}

// A store of three volumes, made in that order: "old" and "main" (10 000 files each, 2000
// distinct objects), and "keep", whose 100 objects are all "old"'s too. `command` (fbfs arguments
// before --store) runs on a copy of it, uninterrupted, to know the digest and pool after.
struct Fixture {
    TempDir tmp;
    fs::path before = tmp / "before";
    std::vector<std::string> command;
    std::string digest_before;
    std::string digest_after;
    std::uint64_t bytes_after = 0;
    std::chrono::steady_clock::duration full{};

    explicit Fixture(std::vector<std::string> args) : command(std::move(args)) {
        {
            auto store = Store::open(before, Store::Mode::create_if_missing);
            REQUIRE(store);
            put_volume(**store, "old", 10'000, 2000, "old object ");
            put_volume(**store, "main", 10'000, 2000, "main object ");
            put_volume(**store, "keep", 100, 100, "old object ");
        }
        digest_before = store_digest(before);
        auto reference = copy_store(before, tmp / "reference");
        full = timed_run(argv(reference));
        digest_after = store_digest(reference);
        bytes_after = stored_bytes(reference);
        fs::remove_all(reference);
    }

    std::vector<std::string> argv(const fs::path& store) const {
        std::vector<std::string> out{FBFS_BINARY};
        out.insert(out.end(), command.begin(), command.end());
        out.insert(out.end(), {"--store", store.string()});
        return out;
    }
};

std::vector<std::string> volume_trial(const Fixture& fixture, const fs::path& dir,
                                      microseconds delay, Tally& tally) {
    std::vector<std::string> problems;
    auto store = copy_store(fixture.before, dir / "store");
    bool finished = run_and_kill(fixture.argv(store), delay, dir / "command.log", problems);
    tally.count(finished ? "finished before the kill" : "killed while running");
    auto digest = store_digest(store);
    bool after = digest == fixture.digest_after;
    if (after) {
        tally.count("store as after");
    } else if (digest == fixture.digest_before) {
        tally.count("store as before");
    } else {
        problems.push_back("the store's digest is " + digest + ": neither the one before (" +
                           fixture.digest_before + ") nor after (" + fixture.digest_after + ")");
    }
    if (finished && !after) {
        problems.push_back("the command exited 0 but the store is not as after");
    }
    if (auto verified = verify_problems(store); !verified.empty()) {
        problems.push_back("after the kill: " + verified);
    }
    if (!after) {
        auto again = run(fixture.argv(store));
        if (again.status != 0) {
            problems.push_back("running the command again after the kill failed: " + again.err);
        }
    }
    reap(store);
    if (auto bytes = stored_bytes(store); bytes != fixture.bytes_after) {
        problems.push_back("the pool holds " + std::to_string(bytes) + " bytes once done, not " +
                           std::to_string(fixture.bytes_after));
    }
    if (auto verified = verify_problems(store); !verified.empty()) {
        problems.push_back("once done: " + verified);
    }
    return problems;
}

void kill_trials(const char* experiment, std::vector<std::string> command) {
    std::uint64_t seed = base_seed();
    Fixture fixture(std::move(command));
    run_trials(experiment, fixture.full, seed, trials_from_env("FBFS_TORTURE_PACK_TRIALS", 2),
               [&](const fs::path& dir, microseconds delay, Tally& tally) {
                   return volume_trial(fixture, dir, delay, tally);
               });
}

}  // namespace

TEST_CASE("fbfs volume rm killed at random leaves the store as before or as after",
          "[torture][volumes]") {
    kill_trials("volume rm killed", {"volume", "rm", "old", "keep"});
}

TEST_CASE("fbfs volume cp killed at random leaves the store as before or as after",
          "[torture][volumes]") {
    kill_trials("volume cp killed", {"volume", "cp", "main", "copy"});
}

TEST_CASE("fbfs gc killed at random leaves the store as before or as after", "[torture][volumes]") {
    kill_trials("gc killed", {"gc", "--max-size", "1K", "--keep", "keep"});
}

}  // namespace fbfs::test
