// Volumes listed, removed, copied and collected, over real stores: volume_times, volume_usage,
// volume_removal and volume_gc.
#include "store/meta/volume_removal.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "store/meta/object_reads.h"
#include "store/meta/remote_objects.h"
#include "store/meta/snapshot_tables.h"
#include "store/meta/volume_gc.h"
#include "store/meta/volume_lock.h"
#include "store/meta/volume_times.h"
#include "store/meta/volume_tree.h"
#include "store/meta/volume_usage.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::Store;
using fbfs::test::TempDir;

namespace {

std::unique_ptr<Store> open_store(const fs::path& root) {
    auto store = Store::open(root, Store::Mode::create_if_missing);
    REQUIRE(store);
    return std::move(*store);
}

// Puts file `name` holding `bytes` in the root of `volume` (made if missing).
void add_file(Store& store, const std::string& volume, const std::string& name,
              std::string_view bytes) {
    auto tree = fbfs::VolumeTree::open(store, volume, 0, 0);
    REQUIRE(tree);
    fbfs::InodeRecord record;
    record.mode = S_IFREG | 0644;
    auto made = tree->create(fbfs::k_root_inode, name, record);
    REQUIRE(made);
    auto put = store.pool().put_bytes(bytes);
    REQUIRE(put);
    REQUIRE(tree->set_content(made->ino, put->id, bytes.size(), {}, [](fbfs::InodeRecord&) {}));
}

const fbfs::VolumeUsage& usage_of(const std::vector<fbfs::VolumeUsage>& all,
                                  const std::string& name) {
    for (const auto& u : all) {
        if (u.name == name) {
            return u;
        }
    }
    FAIL("no volume " << name);
    return all.front();
}

std::vector<std::string> names(const Store& store) {
    std::vector<std::string> out;
    auto volumes = store.volumes();
    REQUIRE(volumes);
    for (const auto& v : *volumes) {
        out.push_back(v.name);
    }
    return out;
}

std::uint64_t pool_bytes(const Store& store) {
    std::uint64_t bytes = 0;
    REQUIRE(
        store.pool().for_each([&](const fbfs::ObjectId&, std::uint64_t size) { bytes += size; }));
    return bytes;
}

std::optional<fbfs::VolumeTimes> times_of(Store& store, const std::string& name) {
    std::optional<fbfs::VolumeTimes> out;
    auto volumes = store.volumes();
    REQUIRE(volumes);
    REQUIRE(store.env().read([&](fbfs::LmdbTxn& txn) -> fbfs::Result<void> {
        for (const auto& v : *volumes) {
            if (v.name == name) {
                TRY_ASSIGN(out, fbfs::read_volume_times(txn, store.tables(), v.record.id));
            }
        }
        return {};
    }));
    return out;
}

}  // namespace

TEST_CASE(
    "VolumeTimes: a new volume is dated, a mount moves last_mounted, and a volume an older "
    "fbfs made is dated when the store opens",
    "[store][volumes]") {
    TempDir tmp;
    auto store = open_store(tmp / "s");
    auto before = fbfs::now_ns();
    add_file(*store, "a", "f", "x");
    auto made = times_of(*store, "a");
    REQUIRE(made);
    CHECK(made->created >= before);
    CHECK(made->last_mounted == 0);
    REQUIRE(fbfs::note_volume_mounted(*store, "a", made->created + 5));
    CHECK(times_of(*store, "a")->last_mounted == made->created + 5);
    CHECK(times_of(*store, "a")->created == made->created);

    // As an fbfs without the table left it: the row is missing.
    REQUIRE(store->env().write([&](fbfs::LmdbTxn& txn) {
        return fbfs::forget_volume_times(txn, store->tables(), (*store->volumes())[0].record.id);
    }));
    CHECK(!times_of(*store, "a"));
    store.reset();
    auto reopened = open_store(tmp / "s");
    auto dated = times_of(*reopened, "a");
    REQUIRE(dated);
    CHECK(dated->created >= made->created);
    CHECK(dated->last_mounted == 0);
}

TEST_CASE("VolumeUsage: a volume's own bytes are the objects no other volume names",
          "[store][volumes]") {
    TempDir tmp;
    auto store = open_store(tmp / "s");
    add_file(*store, "a", "shared", "shared bytes");
    add_file(*store, "a", "own", "only in a");
    add_file(*store, "a", "own-again", "only in a");  // twice in a, still a's own
    add_file(*store, "b", "shared", "shared bytes");
    auto usage = fbfs::collect_volume_usage(*store);
    REQUIRE(usage);
    const auto& a = usage_of(*usage, "a");
    CHECK(a.files == 3);
    CHECK(a.directories == 1);
    CHECK(a.logical_bytes == 12 + 9 + 9);
    CHECK(a.exclusive.objects == 1);
    CHECK(a.exclusive.bytes == 9);
    const auto& b = usage_of(*usage, "b");
    CHECK(b.exclusive.objects == 0);
    CHECK(b.exclusive.bytes == 0);
}

TEST_CASE(
    "remove_volumes frees exactly the objects no other volume names, and a dry run says "
    "so first",
    "[store][volumes]") {
    TempDir tmp;
    auto store = open_store(tmp / "s");
    add_file(*store, "a", "shared", "shared bytes");
    add_file(*store, "a", "own", "only in a");
    add_file(*store, "b", "shared", "shared bytes");
    add_file(*store, "c", "own", "only in c!");
    auto before = pool_bytes(*store);
    auto dry = fbfs::remove_volumes(*store, {"a", "c"}, true);
    REQUIRE(dry);
    CHECK(dry->total.objects == 2);
    CHECK(dry->total.bytes == 9 + 10);
    CHECK(names(*store) == std::vector<std::string>{"a", "b", "c"});
    CHECK(pool_bytes(*store) == before);

    auto removed = fbfs::remove_volumes(*store, {"a", "c", "a"}, false);
    REQUIRE(removed);
    CHECK(removed->total.bytes == dry->total.bytes);
    CHECK(names(*store) == std::vector<std::string>{"b"});
    CHECK(pool_bytes(*store) == before - removed->total.bytes);
    CHECK(store->pool().contains(fbfs::ObjectId::of(std::string_view("shared bytes"))));
    CHECK(!times_of(*store, "a"));
}

TEST_CASE("remove_volumes is all or nothing: an unknown or locked name changes nothing",
          "[store][volumes]") {
    TempDir tmp;
    auto store = open_store(tmp / "s");
    add_file(*store, "a", "own", "only in a");
    add_file(*store, "b", "own", "only in b");
    auto before = pool_bytes(*store);

    auto unknown = fbfs::remove_volumes(*store, {"a", "nope"}, false);
    REQUIRE(!unknown);
    CHECK(unknown.error().code == ENOENT);
    CHECK_THAT(unknown.error().message, Catch::Contains("'nope'"));

    auto held = fbfs::VolumeLock::acquire(store->root(), "b");
    REQUIRE(held);
    auto busy = fbfs::remove_volumes(*store, {"a", "b"}, false);
    REQUIRE(!busy);
    CHECK(busy.error().code == EBUSY);
    CHECK_THAT(busy.error().message, Catch::Contains(std::to_string(::getpid())));
    CHECK(names(*store) == std::vector<std::string>{"a", "b"});
    CHECK(pool_bytes(*store) == before);
    // The lock of 'a' was let go again: it can be taken.
    CHECK(fbfs::VolumeLock::acquire(store->root(), "a"));
}

TEST_CASE("copy_volume shares every object and the copy's changes stay its own",
          "[store][volumes]") {
    TempDir tmp;
    auto store = open_store(tmp / "s");
    add_file(*store, "main", "f", "main's bytes");
    {
        auto tree = fbfs::VolumeTree::open(*store, "main", 0, 0);
        auto f = tree->lookup(fbfs::k_root_inode, "f");
        REQUIRE(tree->set_xattr((*f)->ino, "user.k", "v", fbfs::XattrMode::any));
    }
    auto objects_before = pool_bytes(*store);
    auto copied = fbfs::copy_volume(*store, "main", "pr");
    REQUIRE(copied);
    CHECK(*copied == 2);
    CHECK(pool_bytes(*store) == objects_before);

    auto pr = fbfs::VolumeTree::open(*store, "pr", 0, 0);
    auto f = pr->lookup(fbfs::k_root_inode, "f");
    REQUIRE((f && *f));
    CHECK(pr->xattr((*f)->ino, "user.k").value() == std::optional<std::string>("v"));
    auto put = store->pool().put_bytes(std::string_view("pr's bytes"));
    REQUIRE(pr->set_content((*f)->ino, put->id, 10, {}, [](fbfs::InodeRecord&) {}));

    auto main = fbfs::VolumeTree::open(*store, "main", 0, 0);
    auto main_f = main->get((*main->lookup(fbfs::k_root_inode, "f"))->ino);
    CHECK((*main_f)->object == fbfs::ObjectId::of(std::string_view("main's bytes")));

    // Removing the source leaves the copy whole, and its objects.
    REQUIRE(fbfs::remove_volumes(*store, {"main"}, false));
    CHECK(store->pool().contains(put->id));
    CHECK(!store->pool().contains(fbfs::ObjectId::of(std::string_view("main's bytes"))));

    auto exists = fbfs::copy_volume(*store, "pr", "pr");
    CHECK(!exists);
    add_file(*store, "other", "g", "g");
    auto onto = fbfs::copy_volume(*store, "pr", "other");
    REQUIRE(!onto);
    CHECK(onto.error().code == EEXIST);
    auto missing = fbfs::copy_volume(*store, "nope", "new");
    REQUIRE(!missing);
    CHECK(missing.error().code == ENOENT);
    CHECK(names(*store) == std::vector<std::string>{"other", "pr"});
}

TEST_CASE(
    "collect_garbage drops least recently mounted first until the store fits, never a "
    "kept or locked volume",
    "[store][volumes]") {
    TempDir tmp;
    auto store = open_store(tmp / "s");
    const std::string kib(1024, 'x');
    for (const char* name : {"old", "kept", "busy", "mid", "new"}) {
        add_file(*store, name, "f", kib + name);
    }
    // Mounted in the order new, mid, busy, kept, old (1 s apart, an hour from now), so the
    // order of last use is the reverse of the order they were made in.
    fbfs::TimeNs second = 1'000'000'000;
    fbfs::TimeNs base = fbfs::now_ns() + 3600 * second;
    int when = 5;
    for (const char* name : {"old", "kept", "busy", "mid", "new"}) {
        REQUIRE(fbfs::note_volume_mounted(*store, name, base + when-- * second));
    }
    auto held = fbfs::VolumeLock::acquire(store->root(), "busy");
    REQUIRE(held);
    fbfs::GcPolicy policy;
    policy.keep = {"kept"};
    policy.max_bytes = pool_bytes(*store) - 1;  // one volume must go
    policy.dry_run = true;
    auto dry = fbfs::collect_garbage(*store, policy, base + 10 * second);
    REQUIRE(dry);
    REQUIRE(dry->dropped.size() == 1);
    CHECK(dry->dropped[0].name == "new");
    CHECK(names(*store).size() == 5);

    policy.dry_run = false;
    policy.max_bytes = 2 * (kib.size() + 6);  // room for two volumes
    auto report = fbfs::collect_garbage(*store, policy, base + 10 * second);
    REQUIRE(report);
    CHECK(report->busy == std::vector<std::string>{"busy"});
    CHECK(names(*store) == std::vector<std::string>{"busy", "kept"});
    CHECK(report->bytes_after == pool_bytes(*store));
    CHECK(report->bytes_after <= *policy.max_bytes);

    // --older-than: 'late' was used 6 s after base, the others are kept or locked.
    add_file(*store, "late", "f", "late");
    REQUIRE(fbfs::note_volume_mounted(*store, "late", base + 6 * second));
    fbfs::GcPolicy age;
    age.older_than = 4 * second;
    age.keep = {"kept"};
    auto young = fbfs::collect_garbage(*store, age, base + 8 * second);
    REQUIRE(young);
    CHECK(names(*store) == std::vector<std::string>{"busy", "kept", "late"});
    auto aged = fbfs::collect_garbage(*store, age, base + 11 * second);
    REQUIRE(aged);
    CHECK(names(*store) == std::vector<std::string>{"busy", "kept"});
}

TEST_CASE("remove_volumes frees thousands of objects, more than one reaping transaction holds",
          "[store][volumes]") {
    TempDir tmp;
    auto store = open_store(tmp / "s");
    auto tree = fbfs::VolumeTree::open(*store, "big", 0, 0);
    REQUIRE(tree);
    for (int i = 0; i < 2500; ++i) {
        fbfs::InodeRecord record;
        record.mode = S_IFREG | 0644;
        auto made = tree->create(fbfs::k_root_inode, "f" + std::to_string(i), record);
        REQUIRE(made);
        std::string bytes = "object " + std::to_string(i);
        auto put = store->pool().put_bytes(bytes);
        REQUIRE(tree->set_content(made->ino, put->id, bytes.size(), {}, [](fbfs::InodeRecord&) {}));
    }
    add_file(*store, "small", "f", "kept");
    auto removed = fbfs::remove_volumes(*store, {"big"}, false);
    REQUIRE(removed);
    CHECK(removed->total.objects == 2500);
    CHECK(pool_bytes(*store) == 4);
    CHECK(store->remove_dead_objects().value() == 0);
}

namespace {

std::optional<fbfs::TimeNs> last_read(Store& store, const fbfs::ObjectId& id) {
    std::optional<fbfs::TimeNs> out;
    REQUIRE(store.env().read([&](fbfs::LmdbTxn& txn) -> fbfs::Result<void> {
        auto when = fbfs::read_last_read(txn, store.tables(), id);
        REQUIRE(when);
        out = *when;
        return {};
    }));
    return out;
}

bool listed_as_remote(Store& store, const fbfs::ObjectId& id) {
    bool held = false;
    REQUIRE(store.env().read([&](fbfs::LmdbTxn& txn) -> fbfs::Result<void> {
        auto h = fbfs::remote_holds(txn, store.tables(), id);
        REQUIRE(h);
        held = *h;
        return {};
    }));
    return held;
}

fbfs::ObjectId id_of(std::string_view bytes) {
    return fbfs::ObjectId::of(bytes);
}

}  // namespace

TEST_CASE("a read log writes the objects read, each with the time of its flush", "[store]") {
    TempDir tmp;
    auto store = open_store(tmp / "store");
    fbfs::ReadLog log;
    log.object_read(id_of("a"));
    log.object_read(id_of("b"));
    log.object_read(id_of("a"));
    auto first = log.flush(*store, 100);
    REQUIRE(first);
    CHECK(*first == 2);
    auto none = log.flush(*store, 150);
    REQUIRE(none);
    CHECK(*none == 0);
    log.object_read(id_of("a"));
    REQUIRE(log.flush(*store, 200));
    CHECK(last_read(*store, id_of("a")) == 200);
    CHECK(last_read(*store, id_of("b")) == 100);
    CHECK(last_read(*store, id_of("c")) == std::nullopt);
}

TEST_CASE("gc drops pooled objects the remote holds, least recently read first", "[store]") {
    TempDir tmp;
    auto store = open_store(tmp / "store");
    std::vector<std::string> contents;
    for (int i = 0; i < 4; ++i) {
        contents.push_back("object " + std::to_string(i) + std::string(1000, 'x'));
        add_file(*store, "pulled", "f" + std::to_string(i), contents.back());
    }
    add_file(*store, "local", "mine", "only here" + std::string(1000, 'y'));
    std::vector<fbfs::ObjectId> remote;
    for (const auto& c : contents) {
        remote.push_back(id_of(c));
    }
    REQUIRE(fbfs::note_remote_objects(*store, remote));
    // f3 read last, f2 before it; f0 and f1 never.
    fbfs::ReadLog log;
    log.object_read(remote[2]);
    REQUIRE(log.flush(*store, 100));
    log.object_read(remote[3]);
    REQUIRE(log.flush(*store, 200));
    auto pooled = [&](int i) { return store->pool().contains(remote[static_cast<std::size_t>(i)]); };

    fbfs::GcPolicy policy;
    policy.max_bytes = 3500;  // 5041 bytes in all: two of the four 1008-byte objects must go
    policy.keep = {"pulled", "local"};

    SECTION("without a way to ask the remote, no pooled object goes") {
        auto report = fbfs::collect_garbage(*store, policy, 1000);
        REQUIRE(report);
        CHECK(report->fetchable.objects == 0);
        for (int i = 0; i < 4; ++i) {
            CHECK(pooled(i));
        }
    }
    SECTION("the least recently read go until the store fits, and only those the remote has") {
        std::vector<fbfs::ObjectId> asked;
        policy.remote_missing = [&](std::span<const fbfs::ObjectId> ids)
            -> fbfs::Result<std::vector<fbfs::ObjectId>> {
            asked.assign(ids.begin(), ids.end());
            return std::vector<fbfs::ObjectId>{remote[0]};  // evicted by the server
        };
        auto report = fbfs::collect_garbage(*store, policy, 1000);
        REQUIRE(report);
        CHECK(asked.size() == 2);  // f0 and f1: never read, and enough to fit
        CHECK(report->remote_lacked == 1);
        CHECK(report->fetchable.objects == 1);
        CHECK(pooled(0));  // the remote lacks it: kept, and no longer listed as the remote's
        CHECK_FALSE(listed_as_remote(*store, remote[0]));
        CHECK_FALSE(pooled(1));
        CHECK(pooled(2));
        CHECK(pooled(3));
        CHECK(names(*store).size() == 2);  // metadata untouched: the volume still names f1
    }
    SECTION("past max_fetchable objects, the rest wait for the next gc and no volume goes") {
        policy.keep = {"pulled"};  // "local" could go, but dropping fetchable objects comes first
        policy.max_fetchable = 1;
        std::size_t asked = 0;
        policy.remote_missing = [&](std::span<const fbfs::ObjectId> ids)
            -> fbfs::Result<std::vector<fbfs::ObjectId>> {
            asked += ids.size();
            return std::vector<fbfs::ObjectId>{};
        };
        auto report = fbfs::collect_garbage(*store, policy, 1000);
        REQUIRE(report);
        CHECK(asked == 1);
        CHECK(report->fetchable_capped);
        CHECK(report->fetchable.objects == 1);
        CHECK(report->dropped.empty());
        CHECK(names(*store).size() == 2);
    }
    SECTION("an object that leaves the store takes its rows with it") {
        REQUIRE(fbfs::remove_volumes(*store, {"pulled"}, false));
        CHECK_FALSE(listed_as_remote(*store, remote[2]));
        CHECK(last_read(*store, remote[2]) == std::nullopt);
    }
}

TEST_CASE("gc deletes objects nothing names once they are an hour old", "[store]") {
    TempDir tmp;
    auto store = open_store(tmp / "store");
    add_file(*store, "a", "f", "named");
    auto old_stray = store->pool().put_bytes(std::string_view("left by a killed pull"));
    auto new_stray = store->pool().put_bytes(std::string_view("a pull still running"));
    REQUIRE(old_stray);
    REQUIRE(new_stray);
    auto two_hours_ago = fbfs::now_ns() - 7200LL * 1'000'000'000;
    struct timespec times[2] = {{two_hours_ago / 1'000'000'000, 0},
                                {two_hours_ago / 1'000'000'000, 0}};
    REQUIRE(::utimensat(AT_FDCWD, store->pool().object_path(old_stray->id).c_str(), times, 0) ==
            0);
    fbfs::GcPolicy policy;
    policy.older_than = 365LL * 24 * 3600 * 1'000'000'000;  // no volume is that old
    policy.dry_run = GENERATE(true, false);
    auto report = fbfs::collect_garbage(*store, policy, fbfs::now_ns());
    REQUIRE(report);
    CHECK(report->strays.objects == 1);
    CHECK(report->strays.bytes == std::string_view("left by a killed pull").size());
    CHECK(store->pool().contains(old_stray->id) == policy.dry_run);
    CHECK(store->pool().contains(new_stray->id));
    CHECK(store->pool().contains(id_of("named")));
    CHECK(report->dropped.empty());
}
