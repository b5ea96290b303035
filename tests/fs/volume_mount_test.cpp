// fbfs volume and gc around real mounts: a copy and its source mounted side by side change
// apart; a mounted volume is listed with its mountpoint and daemon, and is never removed or
// collected; a mount's start and end are recorded; mount --max-store-size collects when the mount
// ends.
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "fs/process.h"
#include "tests/support/mount.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::test::Mount;
using fbfs::test::read_file;
using fbfs::test::run;
using fbfs::test::run_cli;
using fbfs::test::TempDir;
using fbfs::test::write_file;

namespace {

std::vector<std::string> with_store(std::vector<std::string> args, const fs::path& store) {
    args.insert(args.end(), {"--store", store.string()});
    return args;
}

// The fields `fields` (a python expression over volume `v`) of each volume, as python3 prints them
// after parsing `fbfs volume list --json`.
std::string listed(const fs::path& store, const std::string& fields) {
    auto list = run_cli(with_store({"volume", "list", "--json"}, store));
    REQUIRE(list.status == 0);
    fbfs::test::RunOptions options;
    options.input = list.out;
    auto parsed =
        run({"python3", "-c",
             "import json,sys; print([" + fields + " for v in json.load(sys.stdin)['volumes']])"},
            options);
    INFO(list.out << parsed.err);
    REQUIRE(parsed.status == 0);
    return parsed.out;
}

}  // namespace

TEST_CASE("volume cp: a copy and its source, mounted side by side, change apart",
          "[fuse][volumes]") {
    TempDir tmp;
    auto store = tmp / "store";
    {
        Mount main(store, tmp / "m1", {"--volume", "main"});
        write_file(main / "shared.txt", "from main\n");
        fs::create_directory(main / "obj");
        write_file(main / "obj" / "a.o", std::string(50'000, 'a'));
    }
    REQUIRE(run_cli(with_store({"volume", "cp", "main", "pr"}, store)).status == 0);
    {
        Mount main(store, tmp / "m1", {"--volume", "main"});
        Mount pr(store, tmp / "m2", {"--volume", "pr"});
        CHECK(read_file(pr / "obj" / "a.o") == std::string(50'000, 'a'));
        write_file(pr / "shared.txt", "changed in pr\n");
        write_file(pr / "obj" / "b.o", "pr's own");
        fs::remove(pr / "obj" / "a.o");
        write_file(main / "main-only", "main's own");

        CHECK(read_file(main / "shared.txt") == "from main\n");
        CHECK(read_file(main / "obj" / "a.o") == std::string(50'000, 'a'));
        CHECK(!fs::exists(main / "obj" / "b.o"));
        CHECK(!fs::exists(pr / "main-only"));
        main.unmount();
        pr.unmount();
    }
    Mount main(store, tmp / "m1", {"--volume", "main"});
    CHECK(read_file(main / "shared.txt") == "from main\n");
    CHECK(read_file(main / "obj" / "a.o") == std::string(50'000, 'a'));
    main.unmount();
    // a.o is main's alone now, and the bytes pr wrote are pr's alone.
    CHECK(listed(store, "(v['name'], v['exclusive_bytes'])") == "[('main', 50020), ('pr', 22)]\n");
    CHECK(run_cli(with_store({"verify"}, store)).status == 0);
}

TEST_CASE("volume list names a mount's place and daemon; rm and gc leave a mounted volume alone",
          "[fuse][volumes]") {
    TempDir tmp;
    auto store = tmp / "store";
    Mount mount(store, tmp / "mnt", {"--volume", "ws"});
    write_file(mount / "f", "bytes");
    auto pid = fbfs::test::daemon_pid(mount.path());
    REQUIRE(pid);
    CHECK(
        listed(store, "(v['name'], v['mounted'])") ==
        fmt::format("[('ws', {{'pid': {}, 'mountpoint': '{}'}})]\n", *pid, mount.path().string()));

    auto rm = run_cli(with_store({"volume", "rm", "ws"}, store));
    CHECK(rm.status == 1);
    CHECK_THAT(rm.err, Catch::Contains("pid " + std::to_string(*pid)));
    auto gc = run_cli(with_store({"gc", "--max-size", "0"}, store));
    CHECK(gc.status == 0);
    CHECK_THAT(gc.out, Catch::Contains("kept volume 'ws': it is in use"));
    CHECK(read_file(mount / "f") == "bytes");

    // A copy of a mounted volume is what its mount had committed: the closed file is there.
    REQUIRE(run_cli(with_store({"volume", "cp", "ws", "snap"}, store)).status == 0);
    mount.unmount();
    CHECK(listed(store, "(v['name'], v['files'], v['mounted'])") ==
          "[('snap', 1, None), ('ws', 1, None)]\n");
    // The end of the mount is recorded: ws's last mount is after the copy was made.
    auto times = listed(store, "(v['created'], v['last_mounted'])");
    fbfs::test::RunOptions options;
    options.input = times;
    auto later = run({"python3", "-c",
                      "import ast,sys; (snap, ws) = ast.literal_eval(sys.stdin.read()); "
                      "print(snap[1] is None and ws[1] > snap[0])"},
                     options);
    INFO(times);
    CHECK(later.out == "True\n");
    CHECK(run_cli(with_store({"volume", "rm", "ws", "snap"}, store)).status == 0);
    CHECK(run_cli(with_store({"verify"}, store)).status == 0);
}

TEST_CASE("mount --max-store-size drops other volumes when the mount ends, never its own",
          "[fuse][volumes]") {
    TempDir tmp;
    auto store = tmp / "store";
    {
        Mount old(store, tmp / "mnt", {"--volume", "old"});
        write_file(old / "big", std::string(200'000, 'o'));
    }
    Mount current(store, tmp / "mnt", {"--volume", "current", "--max-store-size", "100K"});
    write_file(current / "big", std::string(90'000, 'c'));
    current.unmount();
    CHECK(listed(store, "v['name']") == "['current']\n");
    auto stat = run_cli(with_store({"stat", "--json"}, store));
    CHECK_THAT(stat.out, Catch::Contains("\"stored_bytes\":90000"));
    CHECK(run_cli(with_store({"verify"}, store)).status == 0);
}
