// fbfs pack and fbfs unpack as a CI job runs them: to a file and back, through pipes, the summary
// line; and every refusal is one line "fbfs: ...", exit status 1, with every file left as it was
// (stores, the output directory, an existing pack file) and no temp file behind.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "store/base/byte_codec.h"
#include "store/base/object_id.h"
#include "store/meta/lmdb.h"
#include "store/meta/schema.h"
#include "store/meta/snapshot_tables.h"
#include "store/meta/store.h"
#include "store/meta/volume_lock.h"
#include "store/meta/volume_snapshot.h"
#include "tests/support/must.h"
#include "tests/support/nobody.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tree.h"
#include "tests/support/volume_builder.h"

namespace fs = std::filesystem;
using fbfs::k_root_inode;
using fbfs::LmdbTxn;
using fbfs::ObjectId;
using fbfs::Result;
using fbfs::Store;
using fbfs::VolumeLock;
using fbfs::test::check_refused;
using fbfs::test::run_cli;
const auto as_nobody = fbfs::test::run_fbfs_as_nobody;
using fbfs::test::RunOptions;
using fbfs::test::TempDir;
using fbfs::test::VolumeBuilder;

using fbfs::test::must;

namespace {

std::size_t lines(const std::string& text) {
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// Adds volume `name` to the store at `root` (creating the store): a directory, files with
// content (two with the same bytes), an empty file, a hard link, a symlink and a whiteout.
void add_volume(const fs::path& root, const std::string& name, const std::string& flavor) {
    VolumeBuilder volume(root, name);
    std::string text;
    for (int i = 0; i < 50; ++i) {
        text += "line " + std::to_string(i) + " of " + flavor + "\n";
    }
    auto dir = volume.add(k_root_inode, "src", S_IFDIR | 0755);
    auto file = volume.add(dir, "a.txt", S_IFREG | 0644, text);
    volume.add(dir, "copy.txt", S_IFREG | 0644, text);
    volume.add(dir, "data.bin", S_IFREG | 0600,
               fbfs::test::random_bytes(std::hash<std::string>{}(flavor), 3000));
    volume.add(k_root_inode, "empty", S_IFREG | 0644);
    volume.add(k_root_inode, "link", S_IFLNK | 0777, "src/a.txt");
    must(volume.tree().link(file, k_root_inode, "hard.txt"));
    must(volume.tree().add_whiteout(k_root_inode, "gone"));
}

// The volumes of the store at `root`, one line per inode, entry and stamp.
std::vector<std::string> volumes_of(const fs::path& root) {
    auto store = must(Store::open(root, Store::Mode::open_existing));
    std::vector<std::string> out;
    for (const auto& info : must(store->volumes())) {
        must(store->env().read([&](LmdbTxn& txn) -> Result<void> {
            auto s = fbfs::read_snapshot(txn, store->tables(), info.name);
            if (!s) {
                return std::unexpected(s.error());
            }
            out.push_back("volume " + s->name + " next " + std::to_string(s->next_inode));
            for (const auto& [ino, r] : s->inodes) {
                out.push_back(fmt::format("{} inode {} {:o} {}:{} n{} s{} t{} {} {} {}", s->name,
                                          ino, r.mode, r.uid, r.gid, r.nlink, r.size, r.mtime,
                                          r.flags, r.object ? r.object->hex() : "-",
                                          r.symlink_target));
            }
            for (const auto& e : s->entries) {
                out.push_back(fmt::format("{} entry {}/{} {} {}", s->name, e.parent, e.name,
                                          e.value.ino, e.value.type));
            }
            for (const auto& st : s->stamps) {
                out.push_back(fmt::format("{} stamp {} {}", s->name, st.path, st.stamp.size));
            }
            return {};
        }));
    }
    return out;
}

// Every path under `dir`: type; for a regular file its size, and outside a store's meta/ (whose
// LMDB files any open rewrites in place) its mtime and SHA-256; for a symlink its target.
std::map<std::string, std::string> files_of(const fs::path& dir) {
    std::map<std::string, std::string> out;
    if (!fs::exists(dir)) {
        return out;
    }
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        std::string relative = entry.path().lexically_relative(dir).string();
        struct stat st = fbfs::test::lstat_of(entry.path());
        std::string line =
            fbfs::test::file_type(st.st_mode) + " mode=" + std::to_string(st.st_mode & 07777);
        bool lock = relative.find("locks/") != std::string::npos;  // a pid, rewritten by design
        if (S_ISREG(st.st_mode) && !lock) {
            line += " size=" + std::to_string(st.st_size);
            if (relative.find("meta/") == std::string::npos) {
                line += " mtime=" + fbfs::test::time_text(st.st_mtim) +
                        " sha256=" + ObjectId::of(fbfs::test::read_path(entry.path())).hex();
            }
        } else if (S_ISLNK(st.st_mode)) {
            line += " target=" + fbfs::test::readlink_of(entry.path());
        }
        out[relative] = line;
    }
    return out;
}

// What a refused command must leave exactly as it was: every file under a test's temp dir and
// the volumes of its stores.
struct State {
    std::map<std::string, std::string> files;
    std::map<std::string, std::vector<std::string>> stores;
    bool operator==(const State&) const = default;
};

State state_of(const fs::path& dir, std::initializer_list<fs::path> stores) {
    State s{files_of(dir), {}};
    for (const auto& store : stores) {
        s.stores[store.string()] =
            fs::exists(store / "meta") ? volumes_of(store) : std::vector<std::string>{"none"};
    }
    return s;
}

void check_unchanged(const State& before, const State& after) {
    std::string changes;
    std::set<std::string> paths;
    for (const auto& [path, line] : before.files) {
        paths.insert(path);
    }
    for (const auto& [path, line] : after.files) {
        paths.insert(path);
    }
    for (const auto& path : paths) {
        auto b = before.files.find(path);
        auto a = after.files.find(path);
        if (b == before.files.end() || a == after.files.end() || b->second != a->second) {
            changes += "  " + path + ": " + (b == before.files.end() ? "<missing>" : b->second) +
                       " -> " + (a == after.files.end() ? "<missing>" : a->second) + "\n";
        }
    }
    for (const auto& [store, volumes] : before.stores) {
        if (after.stores.at(store) != volumes) {
            changes += "  the volumes of " + store + "\n";
        }
    }
    INFO("changed:\n" << changes);
    CHECK(changes.empty());
    CHECK(after == before);
}

// A temp dir with a store "src" (volumes "app" and "lib"), an empty "out" directory for packs and
// a pack of "src" at "good.pack".
struct Fixture {
    TempDir tmp;
    fs::path src = tmp / "src";
    fs::path out = tmp / "out";
    fs::path good = tmp / "good.pack";

    Fixture() {
        add_volume(src, "app", "app");
        add_volume(src, "lib", "lib");
        fs::create_directory(out);
        auto packed = run_cli({"pack", "--store", src.string(), "-o", good.string()});
        INFO(packed.err);
        REQUIRE(packed.status == 0);
    }

    std::string good_bytes() const { return fbfs::test::read_path(good); }

    // A copy of the good pack with one byte of its metadata's stored bytes changed, at `path`.
    fs::path damaged(const std::string& name = "damaged.pack") const {
        auto bytes = good_bytes();
        // The footer (the last 80 bytes) starts with the offsets of the object table and the
        // metadata, little-endian u64s.
        fbfs::ByteReader footer(std::string_view(bytes).substr(bytes.size() - 80));
        std::uint64_t object_table = 0;
        std::uint64_t metadata = 0;
        REQUIRE((footer.le(object_table) && footer.le(metadata)));
        REQUIRE(metadata + 56 + 5 < bytes.size());
        auto at = static_cast<std::size_t>(metadata + 56 + 5);
        bytes[at] = static_cast<char>(bytes[at] ^ 0x20);
        auto path = tmp / name;
        fbfs::test::write_file(path, bytes);
        return path;
    }
};

}  // namespace

// ---- what works ---------------------------------------------------------------------------------

TEST_CASE("cli pack: pack -o FILE then unpack into another store gives the same volumes",
          "[cli][pack]") {
    Fixture f;
    auto pack_path = f.out / "ci.pack";
    auto packed = run_cli({"pack", "--store", f.src.string(), "-o", pack_path.string()});
    INFO("pack stderr: " << packed.err);
    REQUIRE(packed.status == 0);
    CHECK(packed.out.empty());
    CHECK(lines(packed.err) == 1);
    CHECK_THAT(packed.err, Catch::StartsWith("fbfs pack: 2 volumes, 4 objects, "));
    for (const char* part : {"logical", "distinct", "dedupe", "packed", pack_path.c_str()}) {
        CHECK_THAT(packed.err, Catch::Contains(part));
    }
    // Only the pack, complete, readable by others as any new file (umask 022 in tests).
    CHECK(fbfs::test::names_in(f.out) == std::set<std::string>{"ci.pack"});
    CHECK(fbfs::test::read_path(pack_path).starts_with("FBFSPACK"));
    CHECK(fbfs::test::permissions(fbfs::test::stat_of(pack_path)) == 0644);

    auto dst = f.tmp / "dst";
    auto unpacked = run_cli({"unpack", "--store", dst.string(), pack_path.string()});
    INFO("unpack stderr: " << unpacked.err);
    REQUIRE(unpacked.status == 0);
    CHECK(unpacked.out.empty());
    CHECK(lines(unpacked.err) == 1);
    CHECK_THAT(unpacked.err, Catch::StartsWith("fbfs unpack: 2 volumes, 4 objects (4 new), "));
    for (const char* part : {"logical", "distinct", "dedupe", "packed"}) {
        CHECK_THAT(unpacked.err, Catch::Contains(part));
    }

    auto stat_src = run_cli({"stat", "--store", f.src.string()});
    auto stat_dst = run_cli({"stat", "--store", dst.string()});
    CHECK(stat_src.status == 0);
    CHECK(stat_dst.status == 0);
    CHECK_THAT(stat_dst.out, Catch::Contains("volume app") && Catch::Contains("volume lib"));
    CHECK(stat_dst.out == stat_src.out);
    CHECK(volumes_of(dst) == volumes_of(f.src));
    auto verified = run_cli({"verify", "--store", dst.string()});
    CHECK(verified.status == 0);
    CHECK_THAT(verified.out, Catch::Contains("4 objects verified, 0 problems"));

    // Again into the same store: every object is there already.
    auto again = run_cli({"unpack", "--store", dst.string(), pack_path.string()});
    CHECK(again.status == 0);
    CHECK_THAT(again.err, Catch::Contains("4 objects (0 new)"));
    CHECK(volumes_of(dst) == volumes_of(f.src));
}

TEST_CASE("cli pack: on a terminal pack and unpack show progress, then the summary",
          "[cli][pack]") {
    REQUIRE(fbfs::test::installed("script"));
    Fixture f;
    auto pack_path = f.out / "tty.pack";
    auto dst = f.tmp / "dst";
    // script(1) runs the command on a pseudo-terminal, as at a shell; -e passes its status on.
    auto on_tty = [](const std::string& command) {
        return fbfs::test::sh("script -qec '" + command + "' /dev/null");
    };
    auto packed = on_tty(std::string(FBFS_BINARY) + " pack --store " + f.src.string() + " -o " +
                         pack_path.string());
    INFO(packed.out << packed.err);
    REQUIRE(packed.status == 0);
    CHECK_THAT(packed.out, Catch::Contains("\r\x1b[Kfbfs pack: ") && Catch::Contains("% ") &&
                               Catch::Contains(" of ") && Catch::Contains("/4 objects, ") &&
                               Catch::Contains("/s"));
    CHECK_THAT(packed.out, Catch::Contains("fbfs pack: 2 volumes, 4 objects, "));
    auto unpacked = on_tty(std::string(FBFS_BINARY) + " unpack --store " + dst.string() + " " +
                           pack_path.string());
    INFO(unpacked.out << unpacked.err);
    REQUIRE(unpacked.status == 0);
    CHECK_THAT(unpacked.out, Catch::Contains("\r\x1b[Kfbfs unpack: ") &&
                                 Catch::Contains("/4 objects, ") && Catch::Contains("/s"));
    CHECK_THAT(unpacked.out, Catch::Contains("fbfs unpack: 2 volumes, 4 objects (4 new), "));
    CHECK(volumes_of(dst) == volumes_of(f.src));
}

TEST_CASE("cli pack: --volume packs only that volume", "[cli][pack]") {
    Fixture f;
    auto pack_path = f.out / "lib.pack";
    auto packed =
        run_cli({"pack", "--store", f.src.string(), "--volume", "lib", "-o", pack_path.string()});
    INFO(packed.err);
    REQUIRE(packed.status == 0);
    CHECK_THAT(packed.err, Catch::StartsWith("fbfs pack: 1 volumes, 2 objects"));
    auto dst = f.tmp / "dst";
    REQUIRE(run_cli({"unpack", "--store", dst.string(), pack_path.string()}).status == 0);
    auto stat = run_cli({"stat", "--store", dst.string()});
    CHECK_THAT(stat.out, Catch::Contains("volume lib") && !Catch::Contains("volume app"));
}

TEST_CASE("cli pack: pack -o - into a pipe and unpack - from a pipe", "[cli][pack]") {
    Fixture f;
    auto dst = f.tmp / "dst";
    RunOptions options;
    options.env["FBFS"] = FBFS_BINARY;
    options.cwd = f.tmp.path().string();
    auto piped = fbfs::test::sh(
        "{ \"$FBFS\" pack --store src -o -; echo $? > pack.status; } | \"$FBFS\" unpack --store "
        "dst -",
        options);
    INFO("stderr: " << piped.err);
    CHECK(piped.status == 0);
    CHECK(fbfs::test::read_path(f.tmp / "pack.status") == "0\n");
    CHECK(piped.out.empty());
    CHECK(lines(piped.err) == 2);
    CHECK_THAT(piped.err, Catch::Contains("fbfs pack: 2 volumes, 4 objects"));
    CHECK_THAT(piped.err, Catch::Contains("fbfs unpack: 2 volumes, 4 objects (4 new)"));
    CHECK(volumes_of(dst) == volumes_of(f.src));

    // From stdin redirected from a file, and from cat through a pipe.
    auto from_file = run_cli({"unpack", "--store", (f.tmp / "dst2").string(), "-"},
                             {.cwd = "", .env = {}, .input = f.good_bytes()});
    INFO(from_file.err);
    CHECK(from_file.status == 0);
    CHECK(volumes_of(f.tmp / "dst2") == volumes_of(f.src));
    auto from_cat = fbfs::test::sh("cat good.pack | \"$FBFS\" unpack --store dst3 -", options);
    INFO(from_cat.err);
    CHECK(from_cat.status == 0);
    CHECK(volumes_of(f.tmp / "dst3") == volumes_of(f.src));

    // pack -o - writes the pack to stdout and nothing else.
    auto to_stdout = run_cli({"pack", "--store", f.src.string(), "-o", "-"});
    CHECK(to_stdout.status == 0);
    CHECK(to_stdout.out.starts_with("FBFSPACK"));
    CHECK(to_stdout.out.ends_with("FBFSEND\n"));
    CHECK_THAT(to_stdout.err, Catch::StartsWith("fbfs pack: ") && !Catch::Contains(" -> "));
}

// ---- refusals: pack -----------------------------------------------------------------------------

TEST_CASE("cli pack: pack from a store that does not exist is refused and creates nothing",
          "[cli][pack]") {
    Fixture f;
    auto missing = f.tmp / "missing";
    auto before = state_of(f.tmp.path(), {f.src});
    auto result = run_cli({"pack", "--store", missing.string(), "-o", (f.out / "x.pack").string()});
    check_refused(result, {"does not exist", missing.string()});
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));
    CHECK_FALSE(fs::exists(missing));
}

TEST_CASE("cli pack: pack --volume the store lacks names it and writes nothing", "[cli][pack]") {
    Fixture f;
    auto before = state_of(f.tmp.path(), {f.src});
    auto result = run_cli(
        {"pack", "--store", f.src.string(), "--volume", "nope", "-o", (f.out / "x.pack").string()});
    check_refused(result, {"'nope'", "app", "lib"});
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));
    CHECK(fbfs::test::names_in(f.out).empty());
    // A name holding an escape sequence and a line break is shown escaped, on the one line.
    auto hostile = run_cli({"pack", "--store", f.src.string(), "--volume", "v\x1b[2J\nx", "-o",
                            (f.out / "x.pack").string()});
    check_refused(hostile, {"'v\\x1b[2J\\x0ax'"});
    CHECK(hostile.err.find('\x1b') == std::string::npos);
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));
    CHECK(fbfs::test::names_in(f.out).empty());
}

TEST_CASE("cli pack: pack -o into a directory that does not exist is refused", "[cli][pack]") {
    Fixture f;
    auto before = state_of(f.tmp.path(), {f.src});
    auto target = f.tmp / "nodir" / "x.pack";
    auto result = run_cli({"pack", "--store", f.src.string(), "-o", target.string()});
    check_refused(result, {(f.tmp / "nodir").string(), "directory that exists"});
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));
    CHECK_FALSE(fs::exists(f.tmp / "nodir"));
}

TEST_CASE("cli pack: pack -o pointing at a directory is refused", "[cli][pack]") {
    Fixture f;
    fbfs::test::write_file(f.out / "keep", "keep");
    auto before = state_of(f.tmp.path(), {f.src});
    auto result = run_cli({"pack", "--store", f.src.string(), "-o", f.out.string()});
    check_refused(result, {f.out.string(), "is a directory"});
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));
}

TEST_CASE("cli pack: --level outside 1..19 is a usage error that writes nothing", "[cli][pack]") {
    Fixture f;
    auto before = state_of(f.tmp.path(), {f.src});
    for (const char* level : {"0", "20", "-3", "fast"}) {
        INFO("--level " << level);
        auto result = run_cli({"pack", "--store", f.src.string(), "--level", level, "-o",
                               (f.out / "x.pack").string()});
        INFO("stderr: " << result.err);
        CHECK(result.status == 2);  // a usage error (cli/commands.h)
        CHECK_THAT(result.err, Catch::Contains("level"));
        CHECK(result.out.empty());
    }
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));
    // The ends of the range work.
    for (const char* level : {"1", "19"}) {
        auto result = run_cli({"pack", "--store", f.src.string(), "--level", level, "-o",
                               (f.out / "x.pack").string()});
        INFO(result.err);
        CHECK(result.status == 0);
    }
}

TEST_CASE("cli pack: an existing -o file is replaced only when the pack succeeds", "[cli][pack]") {
    Fixture f;
    auto target = f.out / "ci.pack";
    fbfs::test::write_file(target, "the pack of yesterday");

    SECTION("a volume that does not exist") {
        auto before = state_of(f.tmp.path(), {f.src});
        auto result =
            run_cli({"pack", "--store", f.src.string(), "--volume", "nope", "-o", target.string()});
        check_refused(result, {"'nope'"});
        check_unchanged(before, state_of(f.tmp.path(), {f.src}));
    }
    SECTION("an object in the store whose bytes were damaged, found while writing") {
        // Damage one object of "app" (same size, other bytes): the pack fails part-way.
        auto store = must(Store::open(f.src, Store::Mode::open_existing));
        std::optional<ObjectId> victim;
        must(store->pool().for_each([&](const ObjectId& id, std::uint64_t size) {
            if (!victim && size > 1000) {
                victim = id;
            }
        }));
        REQUIRE(victim);
        auto path = store->pool().object_path(*victim);
        auto bytes = fbfs::test::read_path(path);
        fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
        bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 1);
        fbfs::test::write_file(path, bytes);
        store.reset();
        auto before = state_of(f.tmp.path(), {f.src});
        auto result = run_cli({"pack", "--store", f.src.string(), "-o", target.string()});
        check_refused(result, {victim->hex(), "does not match", "fbfs verify"});
        check_unchanged(before, state_of(f.tmp.path(), {f.src}));
    }
    CHECK(fbfs::test::read_path(target) == "the pack of yesterday");
    CHECK(fbfs::test::names_in(f.out) == std::set<std::string>{"ci.pack"});
}

TEST_CASE("cli pack: temp files of killed packs to the same output are removed, live ones kept",
          "[cli][pack]") {
    Fixture f;
    auto target = f.out / "ci.pack";
    // A pid no process has: a child that has exited and been reaped.
    pid_t gone = ::fork();
    REQUIRE(gone >= 0);
    if (gone == 0) {
        ::_exit(0);
    }
    REQUIRE(::waitpid(gone, nullptr, 0) == gone);
    auto killed = fmt::format(".ci.pack.fbfs-{}-a1b2c3", gone);
    auto alive = fmt::format(".ci.pack.fbfs-{}-d4e5f6", ::getpid());  // a writer still at work
    auto other = fmt::format(".other.pack.fbfs-{}-a1b2c3", gone);     // another output's
    for (const auto& name : {killed, alive, other, std::string("unrelated")}) {
        fbfs::test::write_file(f.out / name, "half a pack");
    }
    auto result = run_cli({"pack", "--store", f.src.string(), "-o", target.string()});
    INFO(result.err);
    REQUIRE(result.status == 0);
    CHECK(fbfs::test::names_in(f.out) ==
          std::set<std::string>{"ci.pack", alive, other, "unrelated"});
}

TEST_CASE("cli pack: an existing -o file is replaced by a successful pack", "[cli][pack]") {
    Fixture f;
    auto target = f.out / "ci.pack";
    fbfs::test::write_file(target, "the pack of yesterday");
    auto result = run_cli({"pack", "--store", f.src.string(), "-o", target.string()});
    INFO(result.err);
    CHECK(result.status == 0);
    CHECK(fbfs::test::read_path(target).starts_with("FBFSPACK"));
    CHECK(fbfs::test::names_in(f.out) == std::set<std::string>{"ci.pack"});
}

TEST_CASE("cli pack: a mounted volume is refused by pack and by unpack", "[cli][pack]") {
    Fixture f;
    auto dst = f.tmp / "dst";
    add_volume(dst, "app", "old");  // other content than the pack's, so an unpack would show
    auto lock = must(VolumeLock::acquire(f.src, "app"));
    auto dst_lock = must(VolumeLock::acquire(dst, "app"));
    auto before = state_of(f.tmp.path(), {f.src, dst});

    auto packed = run_cli({"pack", "--store", f.src.string(), "-o", (f.out / "x.pack").string()});
    check_refused(packed, {"'app'", "mounted", "fbfs umount"});
    auto unpacked = run_cli({"unpack", "--store", dst.string(), f.good.string()});
    check_refused(unpacked, {"'app'", "mounted", "fbfs umount"});
    check_unchanged(before, state_of(f.tmp.path(), {f.src, dst}));
}

// ---- refusals: unpack ---------------------------------------------------------------------------

TEST_CASE("cli pack: unpack of a missing file is refused and creates no store", "[cli][pack]") {
    Fixture f;
    auto before = state_of(f.tmp.path(), {f.src});
    auto missing = f.tmp / "missing.pack";
    auto result = run_cli({"unpack", "--store", (f.tmp / "new").string(), missing.string()});
    check_refused(result, {"cannot open", missing.string(), "No such file"});
    auto into_existing = run_cli({"unpack", "--store", f.src.string(), missing.string()});
    check_refused(into_existing, {"cannot open", missing.string()});
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));
    CHECK_FALSE(fs::exists(f.tmp / "new"));
}

TEST_CASE("cli pack: unpack of a directory is refused", "[cli][pack]") {
    Fixture f;
    auto before = state_of(f.tmp.path(), {f.src});
    auto result = run_cli({"unpack", "--store", f.src.string(), f.out.string()});
    check_refused(result, {f.out.string(), "is a directory"});
    auto into_new = run_cli({"unpack", "--store", (f.tmp / "new").string(), f.out.string()});
    check_refused(into_new, {"is a directory"});
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));
    CHECK_FALSE(fs::exists(f.tmp / "new"));
}

TEST_CASE("cli pack: unpack of a damaged pack leaves an existing store unchanged", "[cli][pack]") {
    Fixture f;
    auto dst = f.tmp / "dst";
    add_volume(dst, "app", "old");
    add_volume(dst, "other", "other");
    auto damaged = f.damaged();
    auto before = state_of(f.tmp.path(), {f.src, dst});
    auto result = run_cli({"unpack", "--store", dst.string(), damaged.string()});
    check_refused(result, {"damaged", "metadata", "make the pack again"});
    check_unchanged(before, state_of(f.tmp.path(), {f.src, dst}));

    // Cut short, from stdin.
    auto cut = f.good_bytes();
    cut.resize(cut.size() * 2 / 3);
    auto truncated =
        run_cli({"unpack", "--store", dst.string(), "-"}, {.cwd = "", .env = {}, .input = cut});
    check_refused(truncated, {"damaged", "truncated"});
    check_unchanged(before, state_of(f.tmp.path(), {f.src, dst}));
    // Not a pack at all.
    fbfs::test::write_file(f.tmp / "notes.txt", std::string(100, 'n'));
    before = state_of(f.tmp.path(), {f.src, dst});
    auto not_pack = run_cli({"unpack", "--store", dst.string(), (f.tmp / "notes.txt").string()});
    check_refused(not_pack, {"not an fbfs pack"});
    check_unchanged(before, state_of(f.tmp.path(), {f.src, dst}));
}

TEST_CASE("cli pack: unpack of a damaged pack into a new store path leaves no store behind",
          "[cli][pack]") {
    Fixture f;
    auto damaged = f.damaged();
    auto before = state_of(f.tmp.path(), {f.src});
    auto dst = f.tmp / "new-store";
    auto result = run_cli({"unpack", "--store", dst.string(), damaged.string()});
    check_refused(result, {"damaged"});
    CHECK_FALSE(fs::exists(dst));
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));

    // The same pack undamaged creates the store.
    auto good = run_cli({"unpack", "--store", dst.string(), f.good.string()});
    CHECK(good.status == 0);
    CHECK(volumes_of(dst) == volumes_of(f.src));
}

TEST_CASE("cli pack: unpack of a damaged pack into a new nested store path leaves nothing behind",
          "[cli][pack]") {
    // unpack creates the store and any missing parents; when it fails, none of them may stay.
    Fixture f;
    auto damaged = f.damaged();
    auto before = state_of(f.tmp.path(), {f.src});
    auto dst = f.tmp / "cache" / "fbfs" / "store";
    auto result = run_cli({"unpack", "--store", dst.string(), damaged.string()});
    check_refused(result, {"damaged"});
    CHECK_FALSE(fs::exists(dst));
    CHECK_FALSE(fs::exists(f.tmp / "cache"));
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));
}

TEST_CASE("cli pack: unpack of a damaged pack into an empty directory leaves it empty",
          "[cli][pack]") {
    // "On any error the store is left as it was": an empty directory given as --store (as a CI
    // cache directory often is) must not be turned into a half-made store.
    Fixture f;
    auto damaged = f.damaged();
    auto dst = f.tmp / "empty";
    fs::create_directory(dst);
    auto before = state_of(f.tmp.path(), {f.src});
    auto result = run_cli({"unpack", "--store", dst.string(), damaged.string()});
    check_refused(result, {"damaged"});
    CHECK(fbfs::test::names_in(dst).empty());
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));
}

TEST_CASE("cli pack: unpack into a --store that is a file or somebody's directory is refused",
          "[cli][pack]") {
    Fixture f;
    fbfs::test::write_file(f.tmp / "a-file", "not a store");
    fs::create_directory(f.tmp / "docs");
    fbfs::test::write_file(f.tmp / "docs" / "notes.txt", "mine");
    auto before = state_of(f.tmp.path(), {f.src});
    auto into_file = run_cli({"unpack", "--store", (f.tmp / "a-file").string(), f.good.string()});
    check_refused(into_file, {(f.tmp / "a-file").string(), "not a directory"});
    auto into_dir = run_cli({"unpack", "--store", (f.tmp / "docs").string(), f.good.string()});
    check_refused(into_dir, {(f.tmp / "docs").string(), "not an fbfs store"});
    check_unchanged(before, state_of(f.tmp.path(), {f.src}));
}

TEST_CASE("cli pack: unpack as a user other than root refuses trusted. and security. attributes",
          "[cli][pack]") {
    // Root packs volumes with attributes: "app" a trusted. one, "sec" a security. one, "lib" only
    // a user. one. Through a mount nobody could have set the first two (ext4 wants a privileged
    // caller), so nobody's unpack must not install them either.
    TempDir tmp;
    auto src = tmp / "src";
    add_volume(src, "app", "app");
    add_volume(src, "lib", "lib");
    add_volume(src, "sec", "sec");
    auto set = [&](const std::string& volume, const std::string& name) {
        VolumeBuilder builder(src, volume);
        auto& tree = builder.tree();
        auto entry = must(tree.lookup(k_root_inode, "empty"));
        REQUIRE(entry);
        must(tree.set_xattr(entry->ino, "user.note", "1", fbfs::XattrMode::any));
        if (!name.empty()) {
            must(tree.set_xattr(entry->ino, name, "2", fbfs::XattrMode::any));
        }
    };
    set("app", "trusted.origin");
    set("lib", "");
    set("sec", "security.label");
    auto pack = tmp / "all.pack";
    REQUIRE(run_cli({"pack", "--store", src.string(), "-o", pack.string()}).status == 0);
    fs::permissions(pack, fs::perms::others_read, fs::perm_options::add);
    fs::permissions(tmp.path(), fs::perms::others_exec, fs::perm_options::add);
    auto home = tmp / "home";
    fs::create_directory(home);
    REQUIRE(::chown(home.c_str(), 65534, 65534) == 0);
    auto store = home / "store";

    // Only user. attributes: nobody unpacks them.
    auto lib = as_nobody({"unpack", "--store", store.string(), "--only", "lib", pack.string()});
    INFO(lib.err);
    REQUIRE(lib.status == 0);
    auto before = state_of(tmp.path(), {src, store});
    auto all = as_nobody({"unpack", "--store", store.string(), pack.string()});
    check_refused(all,
                  {"'app'", "'trusted.origin'", "only root", "--only", "nothing was unpacked"});
    check_unchanged(before, state_of(tmp.path(), {src, store}));
    auto sec = as_nobody({"unpack", "--store", store.string(), "--only", "sec", pack.string()});
    check_refused(sec, {"'sec'", "'security.label'", "only root"});
    check_unchanged(before, state_of(tmp.path(), {src, store}));
    // A store the refused unpack would have made is not left behind.
    auto fresh = as_nobody({"unpack", "--store", (home / "fresh").string(), pack.string()});
    check_refused(fresh, {"'trusted.origin'"});
    CHECK_FALSE(fs::exists(home / "fresh"));
    // Root keeps them.
    auto as_root = run_cli({"unpack", "--store", (tmp / "root-store").string(), pack.string()});
    INFO(as_root.err);
    CHECK(as_root.status == 0);
}
