#include "store/meta/remote_objects.h"

#include <lmdb.h>

#include "store/meta/store.h"

namespace fbfs {

Result<void> note_remote_object(LmdbTxn& txn, const Tables& tables, const ObjectId& id) {
    return txn.put(tables.remote_objects, id.raw(), "");
}

Result<void> note_remote_objects(Store& store, std::span<const ObjectId> ids) {
    return store.env().write([&](LmdbTxn& txn) -> Result<void> {
        for (const auto& id : ids) {
            TRY(note_remote_object(txn, store.tables(), id));
        }
        return {};
    });
}

Result<void> forget_remote_object(LmdbTxn& txn, const Tables& tables, const ObjectId& id) {
    TRY(txn.del(tables.remote_objects, id.raw()));
    return {};
}

Result<void> forget_remote_objects(LmdbTxn& txn, const Tables& tables) {
    if (int rc = mdb_drop(txn.handle(), tables.remote_objects, 0); rc != 0) {
        return lmdb_error(rc, "forgetting which objects the remote holds");
    }
    return {};
}

Result<bool> remote_holds(const LmdbTxn& txn, const Tables& tables, const ObjectId& id) {
    TRY_ASSIGN(auto row, txn.get(tables.remote_objects, id.raw()));
    return row.has_value();
}

}  // namespace fbfs
