// A thin RAII layer over LMDB (liblmdb): LmdbEnv, LmdbTxn, LmdbCursor.
//
// All three are move-only. A transaction aborts in its destructor unless commit() ran, and
// commit() clears its handle first, so a failed commit is never aborted twice. Values returned
// are copied out (std::string) so they stay valid after the transaction ends. MDB_NOTFOUND is an
// empty optional (or `false`); any other code is an Error carrying mdb_strerror's text.
//
// Thread-safety: LmdbEnv is thread-safe (opened with MDB_NOTLS, so read transactions may be used on
// worker threads). A txn or cursor belongs to one thread at a time. Write transactions are
// serialised by LMDB itself, across threads and processes.
#pragma once

#include <lmdb.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "store/base/error.h"
#include "store/base/thread_safety.h"

namespace fbfs {

using Dbi = MDB_dbi;

// An Error for an LMDB return code: "<what>: <mdb_strerror(rc)>". MDB codes map to EIO, except
// MDB_MAP_FULL (ENOSPC) and system errno values (kept as they are).
std::unexpected<Error> lmdb_error(int rc, std::string_view what);

class LmdbTxn;

class LmdbEnv {
public:
    static constexpr std::size_t k_initial_map_size = std::size_t{1} << 34;  // 16 GiB, grows

    // Opens (creating if missing) the environment in directory `dir`, with room for `max_dbs`
    // named databases. `map_size` is the initial map size (tests pass a small one to exercise
    // growth); a larger map already set by the file or another process wins.
    static Result<LmdbEnv> open(const std::filesystem::path& dir, unsigned max_dbs,
                                std::size_t map_size = k_initial_map_size);

    LmdbEnv(LmdbEnv&&) noexcept;
    LmdbEnv& operator=(LmdbEnv&&) noexcept;
    LmdbEnv(const LmdbEnv&) = delete;
    LmdbEnv& operator=(const LmdbEnv&) = delete;
    ~LmdbEnv();

    // Opens (creating) a named database. Call at start-up, before worker threads exist.
    Result<Dbi> open_dbi(const char* name);

    // Runs `body` in a read-only transaction.
    Result<void> read(const std::function<Result<void>(LmdbTxn&)>& body) const;
    // Runs `body` in a write transaction and commits it if `body` succeeds. When the map is full
    // (LMDB said MDB_MAP_FULL during the attempt, whatever Error `body` made of it), the map is
    // grown and `body` runs again; when the disk is full (ENOSPC or EDQUOT otherwise, or a page
    // write that the full disk cut short, which LMDB reports as EIO), the environment's reserve
    // file (1 MiB kept beside it, made again once there is space) is given up and `body` runs
    // again. So `body` must not have effects outside the txn, or must make them only once.
    Result<void> write(const std::function<Result<void>(LmdbTxn&)>& body);
    // Makes every transaction committed before the call durable (fdatasync of the data file),
    // for callers that promised durability. Concurrent callers share flushes (group commit): a
    // caller whose commits a flush already under way covers (it began after them) waits for
    // that flush instead of starting its own; any other caller starts its own at once.
    Result<void> sync();

    MDB_env* handle() const { return m_env; }

private:
    explicit LmdbEnv(MDB_env* env);
    // Begins a txn; the caller holds m_resize shared. When another process grew the map, lets go
    // of that hold, adopts the size under an exclusive one, and takes the shared hold again.
    Result<LmdbTxn> begin(bool read_only) const REQUIRES_SHARED(*m_resize);
    // Doubles the map size.
    Result<void> grow() EXCLUDES(*m_resize);
    // mdb_env_set_mapsize (0: the size the file has now), which LMDB allows only while this
    // process has no transaction open: hence the exclusive hold.
    int set_map_size(std::size_t size) const REQUIRES(*m_resize);

    // The id of the last transaction committed, as LMDB's meta page says.
    std::size_t last_txnid() const;

    MDB_env* m_env = nullptr;
    // Space held back so that removing files still works on a full disk.
    std::filesystem::path m_reserve;
    // Set while the reserve is given up or could not be made; write() makes it again.
    std::unique_ptr<std::atomic<bool>> m_reserve_missing;
    // The group-commit state of sync(): the transactions each flush under way covers, and those
    // every finished flush covered. `mutex` is never held across the flush itself, nor together
    // with m_resize.
    struct SyncState {
        Mutex mutex;
        std::condition_variable_any done;  // waited on with `mutex`
        // The last txnid each flush under way covers.
        std::multiset<std::size_t> flushing GUARDED_BY(mutex);
        std::size_t durable_txnid GUARDED_BY(mutex) = 0;

        // Whether a flush under way covers every transaction up to `txnid`.
        bool flush_covers(std::size_t txnid) const REQUIRES(mutex) {
            return !flushing.empty() && *flushing.rbegin() >= txnid;
        }
    };
    std::unique_ptr<SyncState> m_sync;
    // Guards the map size: transactions hold it shared, set_map_size() (growing the map or
    // adopting a size grown by another process) exclusive (mdb_env_set_mapsize needs no
    // transaction open in this process). Lock order: taken before any LMDB lock.
    std::unique_ptr<SharedMutex> m_resize;
};

class LmdbCursor;

class LmdbTxn {
public:
    // Begins a txn outside LmdbEnv::read/write. If another process grew the map, this adopts the
    // new size, which LMDB allows only while no other txn of this process is open: prefer
    // LmdbEnv::read/write, which wait for that.
    static Result<LmdbTxn> begin(MDB_env* env, bool read_only);

    LmdbTxn(LmdbTxn&&) noexcept;
    LmdbTxn& operator=(LmdbTxn&&) noexcept;
    LmdbTxn(const LmdbTxn&) = delete;
    LmdbTxn& operator=(const LmdbTxn&) = delete;
    ~LmdbTxn();  // aborts if still open

    Result<void> commit();
    void abort();

    Result<std::optional<std::string>> get(Dbi dbi, std::string_view key) const;
    // Puts `value` under `key`; `flags` as mdb_put (e.g. MDB_NOOVERWRITE, whose EEXIST-like
    // MDB_KEYEXIST comes back as an Error with code EEXIST).
    Result<void> put(Dbi dbi, std::string_view key, std::string_view value, unsigned flags = 0);
    // Deletes `key`: true if it was there.
    Result<bool> del(Dbi dbi, std::string_view key);
    Result<LmdbCursor> cursor(Dbi dbi) const;

    MDB_txn* handle() const { return m_txn; }

private:
    friend class LmdbEnv;
    explicit LmdbTxn(MDB_txn* txn) : m_txn(txn) {}
    MDB_txn* m_txn = nullptr;
};

// Iterates keys in order. seek(prefix) positions at the first key >= prefix; next() advances.
// key()/value() views are valid only until the cursor moves or the txn ends: copy them out.
class LmdbCursor {
public:
    LmdbCursor(LmdbCursor&&) noexcept;
    LmdbCursor& operator=(LmdbCursor&&) noexcept;
    LmdbCursor(const LmdbCursor&) = delete;
    LmdbCursor& operator=(const LmdbCursor&) = delete;
    ~LmdbCursor();

    // Each returns false at the end of the database.
    Result<bool> seek(std::string_view key);  // MDB_SET_RANGE; "" is first()
    Result<bool> first();
    Result<bool> next();
    std::string_view key() const { return m_key; }
    std::string_view value() const { return m_value; }
    // Deletes the entry under the cursor.
    Result<void> del();

private:
    friend class LmdbTxn;
    explicit LmdbCursor(MDB_cursor* cursor) : m_cursor(cursor) {}
    Result<bool> move(MDB_cursor_op op, std::string_view key = {});

    MDB_cursor* m_cursor = nullptr;
    std::string_view m_key;
    std::string_view m_value;
};

// Calls `visit(key, value)` for each entry of `dbi` whose key starts with `prefix`, in key order,
// until `visit` returns false. The views are valid only during the call.
Result<void> for_each_prefix(
    const LmdbTxn& txn, Dbi dbi, std::string_view prefix,
    const std::function<bool(std::string_view key, std::string_view value)>& visit);

}  // namespace fbfs
