#include "store/meta/store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "store/meta/volume_times.h"

namespace fbfs {

namespace fs = std::filesystem;

namespace {

// Checks that `root` is a directory this user can read and write.
Result<void> check_directory(const fs::path& root) {
    struct stat st {};
    if (::stat(root.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            return make_error(ENOENT, fmt::format("store {} does not exist (check --store or "
                                                  "$FBFS_STORE; fbfs mount creates a store)",
                                                  root.string()));
        }
        return errno_error(fmt::format("cannot access store {}", root.string()));
    }
    if (!S_ISDIR(st.st_mode)) {
        return make_error(ENOTDIR, fmt::format("store {} is not a directory (point --store at "
                                               "an fbfs store directory)",
                                               root.string()));
    }
    if (::access(root.c_str(), R_OK | W_OK | X_OK) != 0) {
        return make_error(EACCES, fmt::format("store {} is not readable and writable by this "
                                              "user (fix its permissions or use another --store)",
                                              root.string()));
    }
    return {};
}

// Checks that `root` holds a store (its meta/ directory), without creating anything.
Result<void> check_store(const fs::path& root) {
    if (auto ok = check_directory(root); !ok) {
        return ok;
    }
    if (::access((root / "meta").c_str(), R_OK | W_OK | X_OK) != 0) {
        if (errno == ENOENT) {
            return make_error(ENOENT, fmt::format("{} is not an fbfs store (it has no meta/ "
                                                  "directory; check --store)",
                                                  root.string()));
        }
        return make_error(EACCES, fmt::format("store {} is not readable and writable by this "
                                              "user (fix its permissions or use another --store)",
                                              root.string()));
    }
    return {};
}

Result<void> make_dir(const fs::path& dir) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        return errno_error(fmt::format("cannot create {}", dir.string()));
    }
    return {};
}

// Makes `root` and its meta/ if missing. An existing directory with other things in it and no
// meta/ is refused: it is somebody's data, not a store.
Result<void> create_store_dirs(const fs::path& root) {
    std::error_code ec;
    if (!fs::exists(root, ec)) {
        fs::create_directories(root.parent_path(), ec);
        if (::mkdir(root.c_str(), 0700) != 0 && errno != EEXIST) {
            return errno_error(
                fmt::format("cannot create store {} (use another --store)", root.string()));
        }
    }
    if (auto ok = check_directory(root); !ok) {
        return ok;
    }
    if (!fs::exists(root / "meta", ec) && !fs::is_empty(root, ec)) {
        return make_error(EEXIST, fmt::format("{} is not empty and not an fbfs store (use a new or "
                                              "empty directory for --store)",
                                              root.string()));
    }
    return make_dir(root / "meta");
}

}  // namespace

fs::path Store::default_root() {
    if (const char* store = std::getenv("FBFS_STORE"); store != nullptr && *store != '\0') {
        return store;
    }
    if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache != nullptr && *cache == '/') {
        return fs::path(cache) / "fbfs";
    }
    const char* home = std::getenv("HOME");
    return fs::path(home != nullptr ? home : "/") / ".cache" / "fbfs";
}

Result<std::unique_ptr<Store>> Store::open(const fs::path& root_in, Mode mode) {
    fs::path root = root_in.is_absolute() ? root_in : fs::absolute(root_in);
    if (mode == Mode::create_if_missing) {
        TRY(create_store_dirs(root));
    }
    TRY(check_store(root));
    TRY_ASSIGN(auto pool, ObjectPool::open(root));
    TRY(make_dir(root / "locks"));
    TRY_ASSIGN(auto env, LmdbEnv::open(root / "meta", 16));
    std::unique_ptr<Store> store(new Store(root, std::move(pool), std::move(env)));
    TRY(store->open_tables());
    TRY(store->check_schema());
    TRY(date_untracked_volumes(*store, now_ns()));
    return store;
}

Result<void> Store::open_tables() {
    std::pair<Dbi*, const char*> tables[] = {
        {&m_tables.meta, "meta"},       {&m_tables.volumes, "volumes"},
        {&m_tables.inodes, "inodes"},   {&m_tables.dirents, "dirents"},
        {&m_tables.stamps, "stamps"},   {&m_tables.refs, "refs"},
        {&m_tables.orphans, "orphans"}, {&m_tables.dead, "dead"},
        {&m_tables.xattrs, "xattrs"},   {&m_tables.volume_times, "volume_times"},
        {&m_tables.object_reads, "object_reads"}, {&m_tables.remote_objects, "remote_objects"},
    };
    for (auto [dbi, name] : tables) {
        TRY_ASSIGN(*dbi, m_env.open_dbi(name));
    }
    return {};
}

Result<void> Store::check_schema() {
    return m_env.write([&](LmdbTxn& txn) -> Result<void> {
        TRY_ASSIGN(auto stored, txn.get(m_tables.meta, "schema"));
        if (!stored) {
            return txn.put(m_tables.meta, "schema", encode_u64(k_schema_version));
        }
        auto version = decode_u64(*stored);
        if (!version) {
            return make_error(EIO, fmt::format("store {} has a corrupt metadata schema record "
                                               "(run fbfs verify, or use another --store)",
                                               m_root.string()));
        }
        if (*version > k_schema_version) {
            return make_error(
                EPROTO, fmt::format("store {} was written by a newer fbfs (metadata schema {}, "
                                    "this fbfs reads up to {}): upgrade fbfs or use "
                                    "another --store",
                                    m_root.string(), *version, k_schema_version));
        }
        return {};
    });
}

Result<std::vector<VolumeInfo>> Store::volumes() const {
    std::vector<VolumeInfo> out;
    auto ok = m_env.read([&](LmdbTxn& txn) -> Result<void> {
        Result<void> decoded;
        auto walked = for_each_prefix(txn, m_tables.volumes, "", [&](auto key, auto value) {
            auto record = VolumeRecord::decode(value);
            if (!record) {
                decoded = std::unexpected(record.error());
                return false;
            }
            out.push_back({std::string(key), *record});
            return true;
        });
        return walked ? decoded : walked;
    });
    if (!ok) {
        return std::unexpected(ok.error());
    }
    return out;
}

Result<std::size_t> Store::remove_dead_objects() {
    std::size_t listed = 0;
    auto counted = m_env.read([&](LmdbTxn& txn) -> Result<void> {
        MDB_stat st{};
        if (int rc = mdb_stat(txn.handle(), m_tables.dead, &st); rc != 0) {
            return lmdb_error(rc, "counting dead objects");
        }
        listed = st.ms_entries;
        return {};
    });
    if (!counted || listed == 0) {
        return counted ? Result<std::size_t>(0) : std::unexpected(counted.error());
    }
    // In batches: an unlink can take milliseconds on a busy disk, and every write to the store
    // (each file a mount closes) waits for the transaction that holds the write lock.
    constexpr std::size_t k_batch = 1024;
    std::size_t removed = 0;
    std::size_t batch = 0;
    do {
        std::size_t unlinked_now = 0;
        auto reaped = m_env.write([&](LmdbTxn& txn) -> Result<void> {
            unlinked_now = 0;
            std::vector<std::string> keys;
            auto walked = for_each_prefix(txn, m_tables.dead, "", [&](std::string_view key, auto) {
                keys.emplace_back(key);
                return keys.size() < k_batch;
            });
            if (!walked) {
                return walked;
            }
            for (const auto& key : keys) {
                TRY_ASSIGN(bool unlinked, remove_unreferenced(txn, key));
                unlinked_now += unlinked ? 1 : 0;
            }
            batch = keys.size();
            return {};
        });
        TRY(reaped);
        removed += unlinked_now;
    } while (batch == k_batch);
    return removed;
}

Result<void> Store::remove_if_unreferenced(const ObjectId& id) {
    TRY(remove_if_unreferenced(std::span<const ObjectId>(&id, 1)));
    return {};
}

Result<std::size_t> Store::remove_if_unreferenced(std::span<const ObjectId> ids) {
    constexpr std::size_t k_batch = 1024;  // as remove_dead_objects()
    std::size_t removed = 0;
    while (!ids.empty()) {
        auto batch = ids.first(std::min(k_batch, ids.size()));
        std::size_t now = 0;
        TRY(m_env.write([&](LmdbTxn& txn) -> Result<void> {
            now = 0;
            for (const auto& id : batch) {
                TRY_ASSIGN(bool unlinked, remove_unreferenced(txn, id.raw()));
                now += unlinked ? 1 : 0;
            }
            return {};
        }));
        removed += now;
        ids = ids.subspan(batch.size());
    }
    return removed;
}

Result<bool> Store::remove_unreferenced(LmdbTxn& txn, std::string_view key) {
    TRY_ASSIGN(auto refs, txn.get(m_tables.refs, key));
    auto id = ObjectId::from_raw(key);
    bool unlink = !refs && id;
    if (unlink) {
        TRY(m_pool.remove(*id));
        TRY(txn.del(m_tables.object_reads, key));
        TRY(txn.del(m_tables.remote_objects, key));
    }
    TRY(txn.del(m_tables.dead, key));
    return unlink;
}

Result<void> Store::drop_fetchable(LmdbTxn& /*held: nothing names it anew meanwhile*/,
                                   const ObjectId& id) {
    return m_pool.remove(id);
}

Result<void> adjust_object_ref(LmdbTxn& txn, const Tables& tables, const ObjectId& id, int delta) {
    TRY_ASSIGN(auto raw, txn.get(tables.refs, id.raw()));
    std::uint64_t before = 0;
    if (raw) {
        auto decoded = decode_u64(*raw);
        if (!decoded) {
            return make_error(EIO, fmt::format("object {} has a corrupt reference count in the "
                                               "store metadata (run fbfs verify)",
                                               id.hex()));
        }
        before = *decoded;
    }
    if (delta < 0 && before == 0) {
        return make_error(EIO, fmt::format("object {} lost a reference it did not have: its "
                                           "reference count in the store metadata is wrong (run "
                                           "fbfs verify)",
                                           id.hex()));
    }
    std::uint64_t count = delta > 0 ? before + 1 : before - 1;
    if (count == 0) {
        TRY(txn.del(tables.refs, id.raw()));
        return txn.put(tables.dead, id.raw(), "");
    }
    if (before == 0) {
        TRY(txn.del(tables.dead, id.raw()));
    }
    return txn.put(tables.refs, id.raw(), encode_u64(count));
}

Result<VolumeId> unused_volume_id(const LmdbTxn& txn, const Tables& tables) {
    VolumeId max_id = 0;
    Result<void> decoded;
    TRY(for_each_prefix(txn, tables.volumes, "", [&](std::string_view name, auto value) {
        auto record = VolumeRecord::decode(value);
        if (!record) {
            // Its id is unknown, so any id chosen now might be its: refuse rather than share.
            decoded = make_error(EIO, fmt::format("volume '{}' has a corrupt record in the store "
                                                  "metadata, so no new volume can be made (run "
                                                  "fbfs verify)",
                                                  name));
            return false;
        }
        max_id = std::max(max_id, record->id);
        return true;
    }));
    TRY(decoded);
    if (max_id == std::numeric_limits<VolumeId>::max()) {
        return make_error(EOVERFLOW, "the store has no volume id left (use another --store)");
    }
    return max_id + 1;
}

}  // namespace fbfs
