#include "store/meta/lmdb.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>

namespace fbfs {

namespace {

MDB_val to_val(std::string_view s) {
    return MDB_val{s.size(), const_cast<char*>(s.data())};
}
std::string_view from_val(const MDB_val& v) {
    return {static_cast<const char*>(v.mv_data), v.mv_size};
}

constexpr off_t k_reserve_size = off_t{1} << 20;

// Holds 1 MiB of disk beside the environment, if it is not held already (best effort). Returns
// true if the reserve is there afterwards.
bool make_reserve(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return errno == EEXIST;
    }
    bool held = ::posix_fallocate(fd, 0, k_reserve_size) == 0;
    if (!held) {
        ::unlink(path.c_str());
    }
    ::close(fd);
    return held;
}

// True if the filesystem under `dir` has less than a reserve's worth free. LMDB reports a page
// write that a full disk cut short as EIO, not ENOSPC: this tells the two apart.
bool disk_full(const std::filesystem::path& dir) {
    struct statvfs st {};
    return ::statvfs(dir.c_str(), &st) == 0 &&
           static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize <
               static_cast<std::uint64_t>(k_reserve_size);
}

// Set when LMDB reports MDB_MAP_FULL on this thread. LmdbEnv::write() clears it before each
// attempt and reads it after, so it tells a full map from a full disk by LMDB's own code,
// whatever `body` made of the Error. A write transaction and all that is done in it stay on the
// thread that began it (LMDB requires it), so a flag per thread is exact.
thread_local bool t_map_full = false;

// ENOSPC, or EDQUOT for a user over quota: the disk under the store has no room.
bool is_disk_full(const Result<void>& outcome) {
    return !outcome && (outcome.error().code == ENOSPC || outcome.error().code == EDQUOT);
}

}  // namespace

std::unexpected<Error> lmdb_error(int rc, std::string_view what) {
    int code = EIO;
    if (rc == MDB_MAP_FULL) {
        t_map_full = true;
        code = ENOSPC;
    } else if (rc == MDB_KEYEXIST) {
        code = EEXIST;
    } else if (rc > 0) {
        code = rc;  // a system errno passed through by LMDB
    }
    return make_error(code, fmt::format("{}: {}", what, mdb_strerror(rc)));
}

// ---- LmdbEnv ----------------------------------------------------------------------------------

LmdbEnv::LmdbEnv(MDB_env* env)
    : m_env(env),
      m_reserve_missing(std::make_unique<std::atomic<bool>>(false)),
      m_sync(std::make_unique<SyncState>()),
      m_resize(std::make_unique<SharedMutex>()) {}

LmdbEnv::LmdbEnv(LmdbEnv&& other) noexcept
    : m_env(std::exchange(other.m_env, nullptr)),
      m_reserve(std::move(other.m_reserve)),
      m_reserve_missing(std::move(other.m_reserve_missing)),
      m_sync(std::move(other.m_sync)),
      m_resize(std::move(other.m_resize)) {}

LmdbEnv& LmdbEnv::operator=(LmdbEnv&& other) noexcept {
    if (this != &other) {
        if (m_env != nullptr) {
            mdb_env_close(m_env);
        }
        m_env = std::exchange(other.m_env, nullptr);
        m_reserve = std::move(other.m_reserve);
        m_reserve_missing = std::move(other.m_reserve_missing);
        m_sync = std::move(other.m_sync);
        m_resize = std::move(other.m_resize);
    }
    return *this;
}

LmdbEnv::~LmdbEnv() {
    if (m_env != nullptr) {
        mdb_env_close(m_env);
    }
}

Result<LmdbEnv> LmdbEnv::open(const std::filesystem::path& dir, unsigned max_dbs,
                              std::size_t map_size) {
    MDB_env* raw = nullptr;
    if (int rc = mdb_env_create(&raw); rc != 0) {
        return lmdb_error(rc, "creating the LMDB environment");
    }
    LmdbEnv env(raw);
    if (int rc = mdb_env_set_maxdbs(raw, max_dbs); rc != 0) {
        return lmdb_error(rc, "setting the LMDB database count");
    }
    if (int rc = mdb_env_set_mapsize(raw, map_size); rc != 0) {
        return lmdb_error(rc, "setting the LMDB map size");
    }
    if (int rc = mdb_env_set_maxreaders(raw, 1024); rc != 0) {
        return lmdb_error(rc, "setting the LMDB reader count");
    }
    // NOSYNC: a commit reaches the page cache, so a killed daemon loses nothing; an explicit
    // sync() (on fsync) makes it durable against power loss. NOTLS: readers on worker threads.
    unsigned flags = MDB_NOTLS | MDB_NOSYNC | MDB_NOMETASYNC;
    if (int rc = mdb_env_open(raw, dir.c_str(), flags, 0600); rc != 0) {
        return lmdb_error(rc, fmt::format("opening the metadata database in {}", dir.string()));
    }
    // A larger map set by another process is adopted by passing 0.
    mdb_env_set_mapsize(raw, 0);
    env.m_reserve = dir / "reserve";
    env.m_reserve_missing->store(!make_reserve(env.m_reserve));
    return env;
}

Result<Dbi> LmdbEnv::open_dbi(const char* name) {
    auto txn = LmdbTxn::begin(m_env, false);
    if (!txn) {
        return std::unexpected(txn.error());
    }
    Dbi dbi = 0;
    if (int rc = mdb_dbi_open(txn->handle(), name, MDB_CREATE, &dbi); rc != 0) {
        return lmdb_error(rc, fmt::format("opening table {}", name));
    }
    TRY(txn->commit());
    return dbi;
}

int LmdbEnv::set_map_size(std::size_t size) const {
    return mdb_env_set_mapsize(m_env, size);
}

Result<LmdbTxn> LmdbEnv::begin(bool read_only) const {
    unsigned flags = read_only ? MDB_RDONLY : 0;
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(m_env, nullptr, flags, &txn);
    if (rc == MDB_MAP_RESIZED) {
        // Another process grew the map. Adopting its size remaps the file, which would pull the
        // pages from under this process's open readers (and LMDB refuses while a writer is
        // open): wait until none is open.
        m_resize->unlock_shared();
        {
            ExclusiveLock exclusive(*m_resize);
            set_map_size(0);
        }
        m_resize->lock_shared();
        rc = mdb_txn_begin(m_env, nullptr, flags, &txn);
    }
    if (rc != 0) {
        return lmdb_error(rc, "starting a metadata transaction");
    }
    return LmdbTxn(txn);
}

Result<void> LmdbEnv::read(const std::function<Result<void>(LmdbTxn&)>& body) const {
    SharedLock lock(*m_resize);
    auto txn = begin(true);
    if (!txn) {
        return std::unexpected(txn.error());
    }
    return body(*txn);
}

Result<void> LmdbEnv::write(const std::function<Result<void>(LmdbTxn&)>& body) {
    // Each growth doubles the map; a few are enough for any store, and a bound keeps a disk that
    // is really full from looping.
    bool reserve_used = false;
    // A reserve given up (or that a full disk kept from being made) is made again once there
    // is space, so the next full disk finds one too.
    if (m_reserve_missing->load(std::memory_order_relaxed) && make_reserve(m_reserve)) {
        m_reserve_missing->store(false, std::memory_order_relaxed);
    }
    for (int attempt = 0;; ++attempt) {
        Result<void> outcome;
        t_map_full = false;
        {
            SharedLock lock(*m_resize);
            auto txn = begin(false);
            if (!txn) {
                outcome = std::unexpected(txn.error());
            } else if (outcome = body(*txn); outcome) {
                outcome = txn->commit();
            }
        }
        if (!outcome && outcome.error().code == EIO && disk_full(m_reserve.parent_path())) {
            outcome = make_error(
                ENOSPC, fmt::format("{} (the disk under {} is full)", outcome.error().message,
                                    m_reserve.parent_path().string()));
        }
        bool map_full = !outcome && t_map_full;
        if (is_disk_full(outcome) && !map_full && !reserve_used &&
            ::unlink(m_reserve.c_str()) == 0) {
            spdlog::warn("the disk under {} is full: using the space held in reserve",
                         m_reserve.parent_path().string());
            reserve_used = true;
            m_reserve_missing->store(true, std::memory_order_relaxed);
            continue;
        }
        if (!map_full || attempt == 8) {
            return outcome;
        }
        if (auto grown = grow(); !grown) {
            return grown;
        }
    }
}

Result<void> LmdbEnv::grow() {
    ExclusiveLock lock(*m_resize);
    MDB_envinfo info{};
    mdb_env_info(m_env, &info);
    if (int rc = set_map_size(info.me_mapsize * 2); rc != 0) {
        return lmdb_error(rc, "growing the metadata map");
    }
    return {};
}

std::size_t LmdbEnv::last_txnid() const {
    MDB_envinfo info{};
    mdb_env_info(m_env, &info);
    return info.me_last_txnid;
}

Result<void> LmdbEnv::sync() {
    SyncState& state = *m_sync;
    std::multiset<std::size_t>::iterator mine;
    std::size_t covered = 0;
    {
        LockGuard lock(state.mutex);
        // Every transaction this caller committed has an id up to this one.
        const std::size_t needed = last_txnid();
        while (state.durable_txnid < needed && state.flush_covers(needed)) {
            state.done.wait(state.mutex);
        }
        if (state.durable_txnid >= needed) {
            return {};  // a flush that began after those commits has finished
        }
        // Commits finish writing their pages before the meta page names them, so a flush that
        // starts now covers every transaction up to this id.
        covered = last_txnid();
        mine = state.flushing.insert(covered);
    }
    int rc = mdb_env_sync(m_env, 1);
    {
        LockGuard lock(state.mutex);
        state.flushing.erase(mine);
        if (rc == 0) {
            state.durable_txnid = std::max(state.durable_txnid, covered);
        }
    }
    // The state changed under the lock, so a waiter that checks it after this cannot miss it.
    state.done.notify_all();
    if (rc != 0) {
        return lmdb_error(rc, "syncing the metadata database");
    }
    return {};
}

// ---- LmdbTxn ----------------------------------------------------------------------------------

Result<LmdbTxn> LmdbTxn::begin(MDB_env* env, bool read_only) {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env, nullptr, read_only ? MDB_RDONLY : 0, &txn);
    if (rc == MDB_MAP_RESIZED) {
        // Another process grew the map: adopt its size and try again.
        mdb_env_set_mapsize(env, 0);
        rc = mdb_txn_begin(env, nullptr, read_only ? MDB_RDONLY : 0, &txn);
    }
    if (rc != 0) {
        return lmdb_error(rc, "starting a metadata transaction");
    }
    return LmdbTxn(txn);
}

LmdbTxn::LmdbTxn(LmdbTxn&& other) noexcept : m_txn(std::exchange(other.m_txn, nullptr)) {}

LmdbTxn& LmdbTxn::operator=(LmdbTxn&& other) noexcept {
    if (this != &other) {
        abort();
        m_txn = std::exchange(other.m_txn, nullptr);
    }
    return *this;
}

LmdbTxn::~LmdbTxn() {
    abort();
}

Result<void> LmdbTxn::commit() {
    // mdb_txn_commit frees the txn even when it fails: clear the handle first.
    MDB_txn* txn = std::exchange(m_txn, nullptr);
    if (int rc = mdb_txn_commit(txn); rc != 0) {
        return lmdb_error(rc, "committing metadata");
    }
    return {};
}

void LmdbTxn::abort() {
    if (m_txn != nullptr) {
        mdb_txn_abort(std::exchange(m_txn, nullptr));
    }
}

Result<std::optional<std::string>> LmdbTxn::get(Dbi dbi, std::string_view key) const {
    MDB_val k = to_val(key);
    MDB_val v{};
    int rc = mdb_get(m_txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return std::optional<std::string>();
    }
    if (rc != 0) {
        return lmdb_error(rc, "reading metadata");
    }
    return std::optional<std::string>(from_val(v));
}

Result<void> LmdbTxn::put(Dbi dbi, std::string_view key, std::string_view value, unsigned flags) {
    MDB_val k = to_val(key);
    MDB_val v = to_val(value);
    if (int rc = mdb_put(m_txn, dbi, &k, &v, flags); rc != 0) {
        return lmdb_error(rc, "writing metadata");
    }
    return {};
}

Result<bool> LmdbTxn::del(Dbi dbi, std::string_view key) {
    MDB_val k = to_val(key);
    int rc = mdb_del(m_txn, dbi, &k, nullptr);
    if (rc == MDB_NOTFOUND) {
        return false;
    }
    if (rc != 0) {
        return lmdb_error(rc, "deleting metadata");
    }
    return true;
}

Result<LmdbCursor> LmdbTxn::cursor(Dbi dbi) const {
    MDB_cursor* cursor = nullptr;
    if (int rc = mdb_cursor_open(m_txn, dbi, &cursor); rc != 0) {
        return lmdb_error(rc, "opening a metadata cursor");
    }
    return LmdbCursor(cursor);
}

// ---- LmdbCursor -------------------------------------------------------------------------------

LmdbCursor::LmdbCursor(LmdbCursor&& other) noexcept
    : m_cursor(std::exchange(other.m_cursor, nullptr)),
      m_key(other.m_key),
      m_value(other.m_value) {}

LmdbCursor& LmdbCursor::operator=(LmdbCursor&& other) noexcept {
    if (this != &other) {
        if (m_cursor != nullptr) {
            mdb_cursor_close(m_cursor);
        }
        m_cursor = std::exchange(other.m_cursor, nullptr);
        m_key = other.m_key;
        m_value = other.m_value;
    }
    return *this;
}

LmdbCursor::~LmdbCursor() {
    if (m_cursor != nullptr) {
        mdb_cursor_close(m_cursor);
    }
}

Result<bool> LmdbCursor::move(MDB_cursor_op op, std::string_view key) {
    MDB_val k = to_val(key);
    MDB_val v{};
    int rc = mdb_cursor_get(m_cursor, &k, &v, op);
    if (rc == MDB_NOTFOUND) {
        m_key = {};
        m_value = {};
        return false;
    }
    if (rc != 0) {
        return lmdb_error(rc, "walking metadata");
    }
    m_key = from_val(k);
    m_value = from_val(v);
    return true;
}

Result<bool> LmdbCursor::seek(std::string_view key) {
    // LMDB refuses an empty key (MDB_BAD_VALSIZE) even for MDB_SET_RANGE, yet every key is >= "".
    return key.empty() ? move(MDB_FIRST) : move(MDB_SET_RANGE, key);
}
Result<bool> LmdbCursor::first() {
    return move(MDB_FIRST);
}
Result<bool> LmdbCursor::next() {
    return move(MDB_NEXT);
}

Result<void> LmdbCursor::del() {
    if (int rc = mdb_cursor_del(m_cursor, 0); rc != 0) {
        return lmdb_error(rc, "deleting metadata");
    }
    return {};
}

Result<void> for_each_prefix(
    const LmdbTxn& txn, Dbi dbi, std::string_view prefix,
    const std::function<bool(std::string_view key, std::string_view value)>& visit) {
    auto cursor = txn.cursor(dbi);
    if (!cursor) {
        return std::unexpected(cursor.error());
    }
    for (auto more = cursor->seek(prefix);; more = cursor->next()) {
        if (!more) {
            return std::unexpected(more.error());
        }
        if (!*more || !cursor->key().starts_with(prefix) ||
            !visit(cursor->key(), cursor->value())) {
            return {};
        }
    }
}

}  // namespace fbfs
