#include "store/meta/store.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>

#include "store/base/object_id.h"
#include "store/meta/lmdb.h"
#include "store/meta/schema.h"
#include "store/meta/volume_tree.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::LmdbEnv;
using fbfs::LmdbTxn;
using fbfs::Result;
using fbfs::Store;
using fbfs::test::TempDir;

namespace {

unsigned mode_of(const fs::path& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

// Every path below `dir`, relative to it.
std::set<std::string> listing(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        out.insert(fs::relative(entry.path(), dir).string());
    }
    return out;
}

// Sets an environment variable for the life of the object, then restores the old value.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : m_name(name) {
        if (const char* old = std::getenv(name)) {
            m_old = old;
        }
        set(value);
    }
    ~ScopedEnv() { set(m_old ? m_old->c_str() : nullptr); }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    void set(const char* value) {
        if (value != nullptr) {
            ::setenv(m_name, value, 1);
        } else {
            ::unsetenv(m_name);
        }
    }
    const char* m_name;
    std::optional<std::string> m_old;
};

// Overwrites the stored schema record of the (closed) store at `root`.
void set_schema_record(const fs::path& root, std::string_view bytes) {
    auto env = LmdbEnv::open(root / "meta", 16);
    REQUIRE(env);
    auto meta = env->open_dbi("meta");
    REQUIRE(meta);
    REQUIRE(env->write([&](LmdbTxn& txn) { return txn.put(*meta, "schema", bytes); }));
}

}  // namespace

TEST_CASE("Store: create_if_missing makes a private store with its four directories",
          "[store][store_dir]") {
    TempDir tmp;
    auto root = tmp / "parent" / "store";
    auto store = Store::open(root, Store::Mode::create_if_missing);
    INFO((store ? std::string() : store.error().message));
    REQUIRE(store);
    CHECK((*store)->root() == root);
    CHECK(mode_of(root) == 0700);
    for (const char* dir : {"objects", "tmp", "meta", "locks"}) {
        INFO(dir);
        CHECK(fs::is_directory(root / dir));
        CHECK((mode_of(root / dir) & 0077) == 0);
    }
    auto volumes = (*store)->volumes();
    REQUIRE(volumes);
    CHECK(volumes->empty());
}

TEST_CASE("Store: a store made once opens again with open_existing", "[store][store_dir]") {
    TempDir tmp;
    auto root = tmp / "store";
    REQUIRE(Store::open(root, Store::Mode::create_if_missing));
    auto store = Store::open(root, Store::Mode::open_existing);
    INFO((store ? std::string() : store.error().message));
    REQUIRE(store);
    CHECK((*store)->root() == root);
}

TEST_CASE("Store: a relative root is made absolute", "[store][store_dir]") {
    TempDir tmp;
    auto old_cwd = fs::current_path();
    fs::current_path(tmp.path());
    auto store = Store::open("rel", Store::Mode::create_if_missing);
    fs::current_path(old_cwd);
    REQUIRE(store);
    CHECK((*store)->root().is_absolute());
    CHECK(fs::equivalent((*store)->root(), tmp / "rel"));
}

TEST_CASE("Store: open_existing refuses what is not a store, naming it and creating nothing",
          "[store][store_dir]") {
    TempDir tmp;
    fs::create_directory(tmp / "empty");
    fbfs::test::write_file(tmp / "file", "not a store");
    auto before = listing(tmp.path());

    struct Case {
        fs::path root;
        int code;
        const char* says;
    };
    for (const Case& c : {Case{tmp / "missing", ENOENT, "does not exist"},
                          Case{tmp / "file", ENOTDIR, "is not a directory"},
                          Case{tmp / "empty", ENOENT, "is not an fbfs store"},
                          Case{tmp / "missing" / "deeper", ENOENT, "does not exist"}}) {
        INFO(c.root.string());
        auto store = Store::open(c.root, Store::Mode::open_existing);
        REQUIRE_FALSE(store);
        CHECK(store.error().code == c.code);
        CHECK_THAT(store.error().message, Catch::Contains(c.root.string()));
        CHECK_THAT(store.error().message, Catch::Contains(c.says));
    }
    CHECK(listing(tmp.path()) == before);
    CHECK(fbfs::test::read_file(tmp / "file") == "not a store");
}

TEST_CASE("Store: create_if_missing on a regular file fails and leaves the file alone",
          "[store][store_dir]") {
    TempDir tmp;
    fbfs::test::write_file(tmp / "file", "data");
    auto store = Store::open(tmp / "file", Store::Mode::create_if_missing);
    REQUIRE_FALSE(store);
    CHECK(store.error().code == ENOTDIR);
    CHECK_THAT(store.error().message, Catch::Contains((tmp / "file").string()));
    CHECK(fbfs::test::read_file(tmp / "file") == "data");
}

TEST_CASE("Store: a store written by a newer schema is refused", "[store][store_dir]") {
    TempDir tmp;
    auto root = tmp / "store";
    REQUIRE(Store::open(root, Store::Mode::create_if_missing));
    {
        auto env = LmdbEnv::open(root / "meta", 16);
        REQUIRE(env);
        auto meta = env->open_dbi("meta");
        REQUIRE(meta);
        auto txn = LmdbTxn::begin(env->handle(), false);
        REQUIRE(txn);
        auto stored = txn->get(*meta, "schema");
        REQUIRE(stored);
        REQUIRE(stored->has_value());
        CHECK(fbfs::decode_u64(**stored) == fbfs::k_schema_version);
        REQUIRE(txn->put(*meta, "schema", fbfs::encode_u64(fbfs::k_schema_version + 1)));
        REQUIRE(txn->commit());
    }
    for (auto mode : {Store::Mode::open_existing, Store::Mode::create_if_missing}) {
        auto store = Store::open(root, mode);
        REQUIRE_FALSE(store);
        CHECK_THAT(store.error().message, Catch::Contains("newer"));
        CHECK_THAT(store.error().message, Catch::Contains(root.string()));
    }
}

TEST_CASE("Store: a corrupt schema record is reported as corrupt, not as newer",
          "[store][store_dir]") {
    TempDir tmp;
    auto root = tmp / "store";
    REQUIRE(Store::open(root, Store::Mode::create_if_missing));
    set_schema_record(root, "garbage");
    auto store = Store::open(root, Store::Mode::open_existing);
    REQUIRE_FALSE(store);
    CHECK(store.error().code == EIO);
    CHECK_THAT(store.error().message, Catch::Contains("corrupt"));
    CHECK_THAT(store.error().message, !Catch::Contains("newer"));
    CHECK_THAT(store.error().message, Catch::Contains(root.string()));
}

TEST_CASE("Store: a store of the current schema reopens after the record is rewritten",
          "[store][store_dir]") {
    TempDir tmp;
    auto root = tmp / "store";
    REQUIRE(Store::open(root, Store::Mode::create_if_missing));
    set_schema_record(root, fbfs::encode_u64(fbfs::k_schema_version));
    auto store = Store::open(root, Store::Mode::open_existing);
    INFO((store ? std::string() : store.error().message));
    CHECK(store);
}

TEST_CASE("Store: default_root prefers FBFS_STORE, then XDG_CACHE_HOME, then HOME",
          "[store][store_dir]") {
    ScopedEnv home("HOME", "/home/someone");
    {
        ScopedEnv store("FBFS_STORE", "/explicit/store");
        ScopedEnv cache("XDG_CACHE_HOME", "/xdg/cache");
        CHECK(Store::default_root() == fs::path("/explicit/store"));
    }
    {
        ScopedEnv store("FBFS_STORE", nullptr);
        ScopedEnv cache("XDG_CACHE_HOME", "/xdg/cache");
        CHECK(Store::default_root() == fs::path("/xdg/cache/fbfs"));
    }
    {
        ScopedEnv store("FBFS_STORE", "");
        ScopedEnv cache("XDG_CACHE_HOME", nullptr);
        CHECK(Store::default_root() == fs::path("/home/someone/.cache/fbfs"));
    }
    {
        // The XDG spec says a relative XDG_CACHE_HOME is invalid and to be ignored.
        ScopedEnv store("FBFS_STORE", nullptr);
        ScopedEnv cache("XDG_CACHE_HOME", "relative/cache");
        CHECK(Store::default_root() == fs::path("/home/someone/.cache/fbfs"));
    }
}

TEST_CASE("Store: volumes() lists every volume by name with its id", "[store][store_dir]") {
    TempDir tmp;
    auto store = Store::open(tmp / "store", Store::Mode::create_if_missing);
    REQUIRE(store);
    auto b = fbfs::VolumeTree::open(**store, "b", 0, 0);
    REQUIRE(b);
    auto a = fbfs::VolumeTree::open(**store, "a", 0, 0);
    REQUIRE(a);
    auto volumes = (*store)->volumes();
    INFO((volumes ? std::string() : volumes.error().message));
    REQUIRE(volumes);
    REQUIRE(volumes->size() == 2);
    CHECK((*volumes)[0].name == "a");
    CHECK((*volumes)[0].record.id == a->id());
    CHECK((*volumes)[1].name == "b");
    CHECK((*volumes)[1].record.id == b->id());
    CHECK(a->id() != b->id());
}

namespace {

// Runs `body` in a write transaction of `store`.
Result<void> in_write(Store& store, const std::function<Result<void>(LmdbTxn&)>& body) {
    return store.env().write(body);
}

// The value under `key` in table `dbi`, if any.
std::optional<std::string> stored(Store& store, fbfs::Dbi dbi, std::string_view key) {
    std::optional<std::string> out;
    REQUIRE(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        TRY_ASSIGN(out, txn.get(dbi, key));
        return {};
    }));
    return out;
}

}  // namespace

TEST_CASE("adjust_object_ref: a count that does not decode is corruption naming the object",
          "[store][refs]") {
    TempDir tmp;
    auto store = Store::open(tmp / "store", Store::Mode::create_if_missing);
    REQUIRE(store);
    const auto& t = (*store)->tables();
    auto id = fbfs::ObjectId::of(std::string_view("named by one inode"));
    REQUIRE(in_write(**store, [&](LmdbTxn& txn) { return txn.put(t.refs, id.raw(), "bad"); }));

    for (int delta : {+1, -1}) {
        auto adjusted = in_write(
            **store, [&](LmdbTxn& txn) { return fbfs::adjust_object_ref(txn, t, id, delta); });
        REQUIRE_FALSE(adjusted);
        CHECK(adjusted.error().code == EIO);
        CHECK_THAT(adjusted.error().message, Catch::Contains(id.hex()));
        CHECK_THAT(adjusted.error().message, Catch::Contains("fbfs verify"));
        CHECK(stored(**store, t.refs, id.raw()) == "bad");
        CHECK_FALSE(stored(**store, t.dead, id.raw()));
    }
}

TEST_CASE("adjust_object_ref: dropping a reference the object does not have is corruption",
          "[store][refs]") {
    TempDir tmp;
    auto store = Store::open(tmp / "store", Store::Mode::create_if_missing);
    REQUIRE(store);
    const auto& t = (*store)->tables();
    auto id = fbfs::ObjectId::of(std::string_view("named by nothing"));

    auto dropped =
        in_write(**store, [&](LmdbTxn& txn) { return fbfs::adjust_object_ref(txn, t, id, -1); });
    REQUIRE_FALSE(dropped);
    CHECK(dropped.error().code == EIO);
    CHECK_THAT(dropped.error().message, Catch::Contains(id.hex()));
    CHECK_FALSE(stored(**store, t.refs, id.raw()));
    CHECK_FALSE(stored(**store, t.dead, id.raw()));

    // Counted up and down again, the count goes and the object is listed as dead.
    REQUIRE(
        in_write(**store, [&](LmdbTxn& txn) { return fbfs::adjust_object_ref(txn, t, id, +1); }));
    CHECK(stored(**store, t.refs, id.raw()) == fbfs::encode_u64(1));
    REQUIRE(
        in_write(**store, [&](LmdbTxn& txn) { return fbfs::adjust_object_ref(txn, t, id, -1); }));
    CHECK_FALSE(stored(**store, t.refs, id.raw()));
    CHECK(stored(**store, t.dead, id.raw()) == "");
}

TEST_CASE("unused_volume_id: a volume record that does not decode stops a new volume",
          "[store][store_dir]") {
    TempDir tmp;
    auto store = Store::open(tmp / "store", Store::Mode::create_if_missing);
    REQUIRE(store);
    const auto& t = (*store)->tables();
    auto a = fbfs::VolumeTree::open(**store, "a", 0, 0);
    REQUIRE(a);
    // Its id is unknown now: a new volume could be given it and share its rows.
    REQUIRE(in_write(**store, [&](LmdbTxn& txn) { return txn.put(t.volumes, "a", "x"); }));

    auto b = fbfs::VolumeTree::open(**store, "b", 0, 0);
    REQUIRE_FALSE(b);
    CHECK(b.error().code == EIO);
    CHECK_THAT(b.error().message, Catch::Contains("'a'"));
    CHECK_FALSE(stored(**store, t.volumes, "b"));
}
