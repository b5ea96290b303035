#include "store/meta/lmdb.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::Dbi;
using fbfs::LmdbEnv;
using fbfs::LmdbTxn;
using fbfs::Result;
using fbfs::test::TempDir;

namespace {

struct OpenEnv {
    LmdbEnv env;
    Dbi dbi;
};

OpenEnv open_env(const fs::path& dir, std::size_t map_size = LmdbEnv::k_initial_map_size) {
    fs::create_directories(dir);
    auto env = LmdbEnv::open(dir, 4, map_size);
    REQUIRE(env);
    auto dbi = env->open_dbi("table");
    REQUIRE(dbi);
    return {std::move(*env), *dbi};
}

std::optional<std::string> read_key(const LmdbEnv& env, Dbi dbi, std::string_view key) {
    std::optional<std::string> out;
    auto ok = env.read([&](LmdbTxn& txn) -> Result<void> {
        auto value = txn.get(dbi, key);
        if (!value) {
            return std::unexpected(value.error());
        }
        out = *value;
        return {};
    });
    REQUIRE(ok);
    return out;
}

Result<void> put(LmdbEnv& env, Dbi dbi, std::string_view key, std::string_view value) {
    return env.write([&](LmdbTxn& txn) { return txn.put(dbi, key, value); });
}

}  // namespace

TEST_CASE("LmdbEnv: a value put in a committed write reads back in a later read", "[store][lmdb]") {
    TempDir tmp;
    auto [env, dbi] = open_env(tmp / "env");
    std::string binary("a\0b\xff", 4);
    REQUIRE(put(env, dbi, "key", binary));
    REQUIRE(put(env, dbi, std::string("k\0", 2), "other"));

    CHECK(read_key(env, dbi, "key") == binary);
    CHECK(read_key(env, dbi, std::string("k\0", 2)) == "other");
}

TEST_CASE("LmdbEnv: a committed value survives closing and reopening the environment",
          "[store][lmdb]") {
    TempDir tmp;
    {
        auto [env, dbi] = open_env(tmp / "env");
        REQUIRE(put(env, dbi, "key", "value"));
    }
    auto [env, dbi] = open_env(tmp / "env");
    CHECK(read_key(env, dbi, "key") == "value");
}

TEST_CASE("LmdbTxn: a missing key is an empty optional, not an error", "[store][lmdb]") {
    TempDir tmp;
    auto [env, dbi] = open_env(tmp / "env");
    REQUIRE(put(env, dbi, "present", "1"));

    auto txn = LmdbTxn::begin(env.handle(), true);
    REQUIRE(txn);
    auto missing = txn->get(dbi, "absent");
    REQUIRE(missing);
    CHECK_FALSE(missing->has_value());
    auto present = txn->get(dbi, "present");
    REQUIRE(present);
    CHECK(present->has_value());
}

TEST_CASE("LmdbTxn: del says whether the key was there", "[store][lmdb]") {
    TempDir tmp;
    auto [env, dbi] = open_env(tmp / "env");
    REQUIRE(put(env, dbi, "key", "value"));
    REQUIRE(env.write([&](LmdbTxn& txn) -> Result<void> {
        auto first = txn.del(dbi, "key");
        REQUIRE(first);
        CHECK(*first);
        auto second = txn.del(dbi, "key");
        REQUIRE(second);
        CHECK_FALSE(*second);
        return {};
    }));
    CHECK_FALSE(read_key(env, dbi, "key").has_value());
}

TEST_CASE("LmdbTxn: MDB_NOOVERWRITE on an existing key is an Error with code EEXIST",
          "[store][lmdb]") {
    TempDir tmp;
    auto [env, dbi] = open_env(tmp / "env");
    REQUIRE(put(env, dbi, "key", "first"));
    auto again =
        env.write([&](LmdbTxn& txn) { return txn.put(dbi, "key", "second", MDB_NOOVERWRITE); });
    REQUIRE_FALSE(again);
    CHECK(again.error().code == EEXIST);
    CHECK(read_key(env, dbi, "key") == "first");
}

TEST_CASE("LmdbTxn: a write txn destroyed without commit leaves no trace", "[store][lmdb]") {
    TempDir tmp;
    {
        auto [env, dbi] = open_env(tmp / "env");
        REQUIRE(put(env, dbi, "kept", "1"));
        {
            auto txn = LmdbTxn::begin(env.handle(), false);
            REQUIRE(txn);
            REQUIRE(txn->put(dbi, "dropped", "2"));
            REQUIRE(txn->del(dbi, "kept"));
            // Inside the txn its own writes are visible.
            auto seen = txn->get(dbi, "dropped");
            REQUIRE(seen);
            REQUIRE(seen->has_value());
        }
        CHECK_FALSE(read_key(env, dbi, "dropped").has_value());
        CHECK(read_key(env, dbi, "kept") == "1");
        // The env is still writable: the aborted txn released the writer lock.
        REQUIRE(put(env, dbi, "after", "3"));
    }
    auto [env, dbi] = open_env(tmp / "env");
    CHECK_FALSE(read_key(env, dbi, "dropped").has_value());
    CHECK(read_key(env, dbi, "kept") == "1");
    CHECK(read_key(env, dbi, "after") == "3");
}

TEST_CASE("LmdbTxn: a committed txn is not aborted again by its destructor", "[store][lmdb]") {
    TempDir tmp;
    auto [env, dbi] = open_env(tmp / "env");
    {
        auto txn = LmdbTxn::begin(env.handle(), false);
        REQUIRE(txn);
        REQUIRE(txn->put(dbi, "key", "value"));
        REQUIRE(txn->commit());
        CHECK(txn->handle() == nullptr);
    }
    CHECK(read_key(env, dbi, "key") == "value");
}

TEST_CASE("LmdbEnv: write() whose body fails commits nothing and returns the body's error",
          "[store][lmdb]") {
    TempDir tmp;
    auto [env, dbi] = open_env(tmp / "env");
    REQUIRE(put(env, dbi, "kept", "1"));
    auto failed = env.write([&](LmdbTxn& txn) -> Result<void> {
        REQUIRE(txn.put(dbi, "dropped", "2"));
        REQUIRE(txn.del(dbi, "kept"));
        return fbfs::make_error(EPERM, "the body refused");
    });
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code == EPERM);
    CHECK(failed.error().message == "the body refused");
    CHECK_FALSE(read_key(env, dbi, "dropped").has_value());
    CHECK(read_key(env, dbi, "kept") == "1");
}

TEST_CASE("LmdbEnv: read() cannot write", "[store][lmdb]") {
    TempDir tmp;
    auto [env, dbi] = open_env(tmp / "env");
    auto ok = env.read([&](LmdbTxn& txn) { return txn.put(dbi, "key", "value"); });
    REQUIRE_FALSE(ok);
    CHECK_THAT(ok.error().message, Catch::Contains("writing metadata"));
    CHECK_FALSE(read_key(env, dbi, "key").has_value());
}

TEST_CASE("for_each_prefix: visits exactly the keys with the prefix, in key order",
          "[store][lmdb]") {
    TempDir tmp;
    auto [env, dbi] = open_env(tmp / "env");
    REQUIRE(env.write([&](LmdbTxn& txn) -> Result<void> {
        // Inserted out of order, with neighbours on both sides of the prefix.
        for (const char* key : {"ab/z", "aa", "ab/a", "ab", "ab0", "ab/m", "ac", "a"}) {
            if (auto ok = txn.put(dbi, key, std::string("v:") + key); !ok) {
                return ok;
            }
        }
        return {};
    }));

    std::vector<std::pair<std::string, std::string>> seen;
    REQUIRE(env.read([&](LmdbTxn& txn) {
        return fbfs::for_each_prefix(txn, dbi, "ab/", [&](auto key, auto value) {
            seen.emplace_back(key, value);
            return true;
        });
    }));
    using Pairs = std::vector<std::pair<std::string, std::string>>;
    CHECK(seen == Pairs{{"ab/a", "v:ab/a"}, {"ab/m", "v:ab/m"}, {"ab/z", "v:ab/z"}});
}

TEST_CASE("for_each_prefix: stops when the visitor returns false", "[store][lmdb]") {
    TempDir tmp;
    auto [env, dbi] = open_env(tmp / "env");
    REQUIRE(env.write([&](LmdbTxn& txn) -> Result<void> {
        for (const char* key : {"p1", "p2", "p3"}) {
            if (auto ok = txn.put(dbi, key, ""); !ok) {
                return ok;
            }
        }
        return {};
    }));
    std::vector<std::string> seen;
    REQUIRE(env.read([&](LmdbTxn& txn) {
        return fbfs::for_each_prefix(txn, dbi, "p", [&](auto key, auto) {
            seen.emplace_back(key);
            return seen.size() < 2;
        });
    }));
    CHECK(seen == std::vector<std::string>{"p1", "p2"});
}

TEST_CASE("for_each_prefix: an empty prefix visits every key; an empty table visits none",
          "[store][lmdb]") {
    TempDir tmp;
    auto [env, dbi] = open_env(tmp / "env");
    std::vector<std::string> seen;
    auto visit_all = [&] {
        seen.clear();
        return env.read([&](LmdbTxn& txn) {
            return fbfs::for_each_prefix(txn, dbi, "", [&](auto key, auto) {
                seen.emplace_back(key);
                return true;
            });
        });
    };
    auto empty = visit_all();
    INFO((empty ? std::string() : empty.error().message));
    REQUIRE(empty);
    CHECK(seen.empty());

    REQUIRE(put(env, dbi, "b", ""));
    REQUIRE(put(env, dbi, "a", ""));
    auto full = visit_all();
    INFO((full ? std::string() : full.error().message));
    REQUIRE(full);
    CHECK(seen == std::vector<std::string>{"a", "b"});
}

TEST_CASE("LmdbEnv: write() grows a full map and the data reads back", "[store][lmdb]") {
    TempDir tmp;
    constexpr std::size_t k_map = std::size_t{1} << 20;
    constexpr std::size_t k_value_size = 100'000;
    constexpr int k_values = 500;  // 50 MB, fifty times the initial map
    auto value_of = [](int i) {
        return std::string(k_value_size, static_cast<char>('a' + i % 26));
    };
    auto key_of = [](int i) { return "key" + std::to_string(i); };
    {
        auto [env, dbi] = open_env(tmp / "env", k_map);
        // One large txn (growth restarts the whole body) and then many small ones.
        auto big = env.write([&](LmdbTxn& txn) -> Result<void> {
            for (int i = 0; i < k_values / 2; ++i) {
                if (auto ok = txn.put(dbi, key_of(i), value_of(i)); !ok) {
                    return ok;
                }
            }
            return {};
        });
        INFO((big ? std::string() : big.error().message));
        REQUIRE(big);
        for (int i = k_values / 2; i < k_values; ++i) {
            auto ok = put(env, dbi, key_of(i), value_of(i));
            INFO((ok ? std::string() : ok.error().message));
            REQUIRE(ok);
        }
        MDB_envinfo info{};
        mdb_env_info(env.handle(), &info);
        CHECK(info.me_mapsize > k_map * 50);
        for (int i = 0; i < k_values; i += 37) {
            CHECK(read_key(env, dbi, key_of(i)) == value_of(i));
        }
    }
    // Reopened with the small map size, the env adopts the size of the file.
    auto [env, dbi] = open_env(tmp / "env", k_map);
    for (int i = 0; i < k_values; ++i) {
        auto value = read_key(env, dbi, key_of(i));
        REQUIRE(value.has_value());
        REQUIRE(*value == value_of(i));
    }
    REQUIRE(put(env, dbi, "more", "x"));
    CHECK(read_key(env, dbi, "more") == "x");
}

TEST_CASE("LmdbEnv: open on a missing directory fails with a message naming it", "[store][lmdb]") {
    TempDir tmp;
    auto env = LmdbEnv::open(tmp / "missing", 4);
    REQUIRE_FALSE(env);
    CHECK(env.error().code == ENOENT);
    CHECK_THAT(env.error().message, Catch::Contains((tmp / "missing").string()));
}

TEST_CASE("LmdbEnv: a map grown by another process is adopted without disturbing open readers",
          "[store][lmdb]") {
    // Several daemons (one per volume) share a store's env. When one grows the map, the others
    // must adopt the new size only once none of their own transactions is open: remapping under
    // a reader pulls its pages away, and LMDB refuses while a writer is open.
    TempDir tmp;
    constexpr std::size_t k_map = std::size_t{1} << 20;
    fs::create_directories(tmp / "env");
    int go[2];
    REQUIRE(::pipe(go) == 0);
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // The other daemon: waits for the parent's reader, then writes 8 MB into the env.
        ::close(go[1]);
        ::alarm(60);  // never outlive a parent that failed before saying go
        char c = 0;
        bool ok = ::read(go[0], &c, 1) == 1;
        auto env = LmdbEnv::open(tmp / "env", 4, k_map);
        auto dbi = env ? env->open_dbi("table") : Result<Dbi>(std::unexpected(fbfs::Error{}));
        for (int i = 0; ok && dbi && i < 80; ++i) {
            ok = bool(put(*env, *dbi, "big" + std::to_string(i), std::string(100'000, 'b')));
        }
        ::_exit(ok && dbi ? 0 : 1);
    }
    ::close(go[0]);
    auto [env, dbi] = open_env(tmp / "env", k_map);
    REQUIRE(put(env, dbi, "key", "value"));

    std::atomic<bool> holding{false};
    std::atomic<bool> child_done{false};
    std::string seen_after;
    Result<void> reader_outcome;
    // No Catch assertions on this thread (Catch2 v2 is not thread-safe): it reports by values.
    std::thread reader([&] {
        reader_outcome = env.read([&](LmdbTxn& txn) -> Result<void> {
            auto cursor = txn.cursor(dbi);
            holding = true;
            if (!cursor) {
                return std::unexpected(cursor.error());
            }
            if (auto found = cursor->first(); !found || !*found) {
                return fbfs::make_error(EIO, "the reader found no first key");
            }
            while (!child_done) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            // Give a wrongly eager remap in the main thread time to happen under this view.
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            seen_after = std::string(cursor->key()) + "=" + std::string(cursor->value());
            return {};
        });
    });
    while (!holding) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(::write(go[1], "g", 1) == 1);
    ::close(go[1]);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    child_done = true;
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);

    // This txn sees the grown file: it must wait for the reader, then adopt the size.
    auto big = read_key(env, dbi, "big79");
    reader.join();
    INFO((reader_outcome ? std::string() : reader_outcome.error().message));
    CHECK(reader_outcome);
    // The reader's snapshot predates the child's writes, and its view survived the growth.
    CHECK(seen_after == "key=value");
    CHECK(big == std::string(100'000, 'b'));
    CHECK(read_key(env, dbi, "key") == "value");
}

TEST_CASE("LmdbEnv: write() grows a full map even when the body words the error its own way",
          "[store][lmdb]") {
    TempDir tmp;
    constexpr std::size_t k_map = std::size_t{1} << 20;
    auto [env, dbi] = open_env(tmp / "env", k_map);
    REQUIRE(fs::exists(tmp / "env" / "reserve"));
    std::string value(100'000, 'v');
    int attempts = 0;
    // The way a caller reports a failure in its own words ("no room for ..."), with the code kept.
    auto written = env.write([&](LmdbTxn& txn) -> Result<void> {
        ++attempts;
        for (int i = 0; i < 40; ++i) {
            if (auto ok = txn.put(dbi, "key" + std::to_string(i), value); !ok) {
                return fbfs::make_error(ok.error().code, "no room for the test's values");
            }
        }
        return {};
    });
    INFO((written ? std::string() : written.error().message));
    REQUIRE(written);
    CHECK(attempts > 1);
    CHECK(read_key(env, dbi, "key39") == value);
    // A full map is not a full disk: the space held in reserve is still held.
    CHECK(fs::exists(tmp / "env" / "reserve"));
}

TEST_CASE("LmdbEnv: write() gives up the reserve once when the disk is full, then tries again",
          "[store][lmdb]") {
    TempDir tmp;
    auto [env, dbi] = open_env(tmp / "env");
    REQUIRE(fs::exists(tmp / "env" / "reserve"));
    int attempts = 0;
    // What a body that also writes a file sees when the disk is full: ENOSPC from the system.
    auto written = env.write([&](LmdbTxn& txn) -> Result<void> {
        if (++attempts == 1) {
            return fbfs::sys_error(ENOSPC, "writing a staging file");
        }
        return txn.put(dbi, "key", "value");
    });
    REQUIRE(written);
    CHECK(attempts == 2);
    CHECK_FALSE(fs::exists(tmp / "env" / "reserve"));
    CHECK(read_key(env, dbi, "key") == "value");

    attempts = 0;
    auto full = env.write([&](LmdbTxn&) -> Result<void> {
        ++attempts;
        return fbfs::sys_error(ENOSPC, "writing a staging file");
    });
    REQUIRE_FALSE(full);
    CHECK(full.error().code == ENOSPC);
    // The disk has room again, so this write made the reserve anew before it began; it gives it
    // up once more, and tries no third time.
    CHECK(attempts == 2);
    CHECK_FALSE(fs::exists(tmp / "env" / "reserve"));
}
