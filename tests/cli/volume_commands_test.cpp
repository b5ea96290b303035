// fbfs volume list / rm / cp, fbfs gc and fbfs unpack --only as a user runs them: output that
// parses, refusals that are one line and change nothing, and space given back as `fbfs stat` and
// `du` both count it.
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

#include "store/meta/store.h"
#include "store/meta/volume_lock.h"
#include "store/meta/volume_tree.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::test::check_refused;
using fbfs::test::run;
using fbfs::test::run_cli;
using fbfs::test::TempDir;

namespace {

// Every path under `dir` with its size and mtime, to show that a command changed nothing. LMDB's
// lock.mdb is left out: every reader registers there.
std::set<std::string> snapshot(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        if (entry.path().filename() == "lock.mdb") {
            continue;
        }
        struct stat st {};
        lstat(entry.path().c_str(), &st);
        out.insert(entry.path().string() + " " + std::to_string(st.st_size) + " " +
                   std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec));
    }
    return out;
}

// Volume `volume` of the store at `root` gets files named by `files`, each holding its bytes.
void add_files(const fs::path& root, const std::string& volume,
               std::initializer_list<std::pair<std::string, std::string>> files) {
    auto store = fbfs::Store::open(root, fbfs::Store::Mode::create_if_missing);
    REQUIRE(store);
    auto tree = fbfs::VolumeTree::open(**store, volume, 0, 0);
    REQUIRE(tree);
    for (const auto& [name, bytes] : files) {
        fbfs::InodeRecord record;
        record.mode = S_IFREG | 0644;
        auto made = tree->create(fbfs::k_root_inode, name, record);
        REQUIRE(made);
        auto put = (*store)->pool().put_bytes(bytes);
        REQUIRE(put);
        REQUIRE(tree->set_content(made->ino, put->id, bytes.size(), {}, [](fbfs::InodeRecord&) {}));
    }
}

// A number after `"key":` in `json` (enough for fbfs's own flat output).
std::uint64_t json_number(const std::string& json, const std::string& key) {
    auto at = json.find("\"" + key + "\":");
    REQUIRE(at != std::string::npos);
    return std::stoull(json.substr(at + key.size() + 3));
}

// What `du` counts under the store's objects/: apparent bytes.
std::uint64_t du_bytes(const fs::path& root) {
    auto du = run({"du", "-s", "-b", (root / "objects").string()});
    REQUIRE(du.status == 0);
    return std::stoull(du.out);
}

std::uint64_t stat_stored(const fs::path& root) {
    auto stat = run_cli({"stat", "--json", "--store", root.string()});
    REQUIRE(stat.status == 0);
    return json_number(stat.out, "stored_bytes");
}

// Checks `text` with python3's JSON parser; returns what it printed.
std::string parse_json(const std::string& text) {
    fbfs::test::RunOptions options;
    options.input = text;
    auto parsed = run({"python3", "-c",
                       "import json,sys; d=json.load(sys.stdin); "
                       "print(len(d['volumes']), [v['name'] for v in d['volumes']], "
                       "[v['exclusive_bytes'] for v in d['volumes']], "
                       "[v['mounted'] for v in d['volumes']], "
                       "[v['created'] is not None for v in d['volumes']])"},
                      options);
    INFO(text << parsed.err);
    REQUIRE(parsed.status == 0);
    return parsed.out;
}

// Volumes "a" and "b" of one file each in the store at `root`: what the refusal tests start from.
struct TwoVolumes {
    TempDir tmp;
    fs::path root = tmp / "store";

    TwoVolumes() {
        add_files(root, "a", {{"f", "a"}});
        add_files(root, "b", {{"f", "b"}});
    }

    // Runs fbfs `args` on the store (adding --store) and checks that it was refused
    // (check_refused(), with `parts`) and left every file of the store as it was.
    void refused(std::vector<std::string> args,
                 std::initializer_list<std::string> parts = {}) const {
        args.insert(args.end(), {"--store", root.string()});
        INFO(fbfs::test::command_line(args));
        auto before = snapshot(root);
        check_refused(run_cli(args), parts);
        CHECK(snapshot(root) == before);
    }
};

}  // namespace

TEST_CASE("cli volume: --help names volume and gc, and volume --help its list, rm and cp",
          "[cli][volumes]") {
    auto help = run_cli({"--help"});
    CHECK_THAT(help.out, Catch::Contains("volume") && Catch::Contains("gc"));
    auto volume = run_cli({"volume", "--help"});
    CHECK(volume.status == 0);
    for (const char* command : {"list", "rm", "cp"}) {
        CHECK_THAT(volume.out, Catch::Contains(command));
    }
    auto gc = run_cli({"gc", "--help"});
    CHECK_THAT(gc.out, Catch::Contains("--max-size") && Catch::Contains("--older-than") &&
                           Catch::Contains("--keep") && Catch::Contains("mounted"));
}

TEST_CASE("cli volume: list --json parses and says what each volume holds on its own",
          "[cli][volumes]") {
    TempDir tmp;
    auto root = tmp / "store";
    add_files(root, "a", {{"f", "shared"}, {"g", "a's own"}});
    add_files(root, "b", {{"f", "shared"}});
    auto list = run_cli({"volume", "list", "--json", "--store", root.string()});
    REQUIRE(list.status == 0);
    CHECK(parse_json(list.out) == "2 ['a', 'b'] [7, 0] [None, None] [True, True]\n");

    auto text = run_cli({"volume", "list", "--store", root.string()});
    REQUIRE(text.status == 0);
    CHECK_THAT(text.out, Catch::Contains("LAST MOUNTED") && Catch::Contains("never"));

    // A volume in use shows its holder's pid.
    auto held = fbfs::VolumeLock::acquire(root, "a");
    REQUIRE(held);
    auto busy = run_cli({"volume", "list", "--json", "--store", root.string()});
    CHECK_THAT(parse_json(busy.out),
               Catch::Contains(fmt::format("{{'pid': {}, 'mountpoint': None}}", ::getpid())));
}

TEST_CASE("cli volume: rm gives back exactly what --dry-run said, as fbfs stat and du count it",
          "[cli][volumes]") {
    TempDir tmp;
    auto root = tmp / "store";
    add_files(root, "a", {{"f", "shared"}, {"g", std::string(100'000, 'a')}});
    add_files(root, "b", {{"f", "shared"}, {"h", std::string(5000, 'b')}});
    add_files(root, "c", {{"f", "c only"}});
    auto stored = stat_stored(root);
    auto du = du_bytes(root);
    auto before = snapshot(root);
    auto dry = run_cli({"volume", "rm", "--dry-run", "a", "c", "--store", root.string()});
    REQUIRE(dry.status == 0);
    CHECK(snapshot(root) == before);
    CHECK_THAT(dry.out, Catch::Contains("would free 2 objects, 100006 bytes"));
    CHECK(stat_stored(root) == stored);

    auto rm = run_cli({"volume", "rm", "a", "c", "--store", root.string()});
    REQUIRE(rm.status == 0);
    CHECK_THAT(rm.out, Catch::Contains("freed 2 objects, 100006 bytes"));
    CHECK(stored - stat_stored(root) == 100'006);
    CHECK(du - du_bytes(root) == 100'006);
    auto verify = run_cli({"verify", "--store", root.string()});
    CHECK(verify.status == 0);
    auto list = run_cli({"volume", "list", "--json", "--store", root.string()});
    CHECK_THAT(parse_json(list.out), Catch::StartsWith("1 ['b']"));
}

TEST_CASE("cli volume: rm of an unknown or busy volume is one line, exit 1, nothing changed",
          "[cli][volumes]") {
    TwoVolumes store;
    store.refused({"volume", "rm", "a", "nope"}, {"no volume 'nope'", "nothing"});

    auto held = fbfs::VolumeLock::acquire(store.root, "b");
    REQUIRE(held);
    for (bool dry : {true, false}) {
        std::vector<std::string> args{"volume", "rm", "a", "b"};
        if (dry) {
            args.push_back("--dry-run");
        }
        // Not even a lock file of 'a' is left behind.
        store.refused(args, {"pid " + std::to_string(::getpid())});
    }
    auto list = run_cli({"volume", "list", "--json", "--store", store.root.string()});
    CHECK_THAT(parse_json(list.out), Catch::StartsWith("2 ['a', 'b']"));
}

TEST_CASE("cli volume: cp refuses an existing or missing name in one line, changing nothing",
          "[cli][volumes]") {
    TwoVolumes store;
    for (auto args : {std::vector<std::string>{"a", "b"}, {"nope", "c"}, {"a", "../x"}}) {
        store.refused({"volume", "cp", args[0], args[1]});
    }
    auto cp = run_cli({"volume", "cp", "a", "c", "--store", store.root.string()});
    CHECK(cp.status == 0);
    auto list = run_cli({"volume", "list", "--json", "--store", store.root.string()});
    // 'a' and 'c' share their object now: neither holds it alone.
    CHECK_THAT(parse_json(list.out), Catch::StartsWith("3 ['a', 'b', 'c'] [0, 1, 0]"));
}

TEST_CASE("cli gc: bad sizes and durations are one line, exit 1, nothing changed",
          "[cli][volumes]") {
    TwoVolumes store;
    for (auto args : {std::vector<std::string>{"--max-size", "10X"},
                      {"--max-size", "G"},
                      {"--max-size", "-5"},
                      {"--older-than", "5"},
                      {"--older-than", "3y"},
                      {"--older-than", "d7"},
                      {}}) {
        args.insert(args.begin(), "gc");
        store.refused(args);
    }
    store.refused({"mount", "--max-store-size", "lots", (store.tmp / "mnt").string()},
                  {"--max-store-size"});
}

TEST_CASE("cli gc: --max-size drops the least recently used volumes, never a --keep one",
          "[cli][volumes]") {
    TempDir tmp;
    auto root = tmp / "store";
    add_files(root, "oldest", {{"f", std::string(4000, 'o')}});
    add_files(root, "kept", {{"f", std::string(4000, 'k')}});
    add_files(root, "newest", {{"f", std::string(4000, 'n')}});
    auto gc = run_cli({"gc", "--max-size", "5K", "--keep", "kept", "--store", root.string()});
    REQUIRE(gc.status == 0);
    CHECK_THAT(gc.out, Catch::Contains("dropped volume 'oldest'") &&
                           Catch::Contains("dropped volume 'newest'"));
    auto list = run_cli({"volume", "list", "--json", "--store", root.string()});
    CHECK_THAT(parse_json(list.out), Catch::StartsWith("1 ['kept']"));
    CHECK(stat_stored(root) <= 5 * 1024);
    CHECK(run_cli({"verify", "--store", root.string()}).status == 0);
}

TEST_CASE("cli unpack: --only installs the volumes named and their objects alone",
          "[cli][volumes]") {
    TempDir tmp;
    auto root = tmp / "store";
    add_files(root, "a", {{"f", "a's bytes"}});
    add_files(root, "b", {{"f", "b's bytes"}});
    REQUIRE(run_cli({"pack", "-o", (tmp / "p").string(), "--store", root.string()}).status == 0);
    auto other = tmp / "other";
    auto missing =
        run_cli({"unpack", "--only", "zz", (tmp / "p").string(), "--store", other.string()});
    check_refused(missing, {"'zz'", "a, b"});
    CHECK(!fs::exists(other));
    auto only = run_cli({"unpack", "--only", "b", (tmp / "p").string(), "--store", other.string()});
    REQUIRE(only.status == 0);
    auto list = run_cli({"volume", "list", "--json", "--store", other.string()});
    CHECK_THAT(parse_json(list.out), Catch::StartsWith("1 ['b'] [9]"));
    CHECK(stat_stored(other) == 9);
}
