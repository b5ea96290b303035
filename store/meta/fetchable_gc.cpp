#include "store/meta/fetchable_gc.h"

#include <algorithm>

#include "store/meta/object_reads.h"
#include "store/meta/remote_objects.h"
#include "store/meta/store.h"

namespace fbfs {

Result<std::vector<Fetchable>> fetchable_objects(
    const LmdbTxn& txn, const Tables& tables,
    const std::unordered_map<ObjectId, std::uint64_t>& pooled,
    const std::function<bool(const ObjectId&)>& in_use) {
    std::vector<Fetchable> out;
    Result<void> failed;
    TRY(for_each_prefix(txn, tables.remote_objects, "", [&](std::string_view key, auto) {
        auto id = ObjectId::from_raw(key);
        if (!id) {
            return true;  // not an id: never an object of the pool
        }
        auto found = pooled.find(*id);
        if (found == pooled.end() || in_use(*id)) {
            return true;
        }
        auto read = read_last_read(txn, tables, *id);
        if (!read) {
            failed = std::unexpected(read.error());
            return false;
        }
        out.push_back({*id, found->second, read->value_or(0)});
        return true;
    }));
    TRY(failed);
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.last_read < b.last_read; });
    return out;
}

Result<Freed> drop_fetchable_objects(Store& store, std::span<const Fetchable> objects) {
    constexpr std::size_t k_batch = 1024;  // as Store::remove_dead_objects: mounts wait meanwhile
    Freed freed;
    while (!objects.empty()) {
        auto batch = objects.first(std::min(k_batch, objects.size()));
        Freed now;
        TRY(store.env().write([&](LmdbTxn& txn) -> Result<void> {
            now = {};
            for (const auto& object : batch) {
                TRY_ASSIGN(bool held, remote_holds(txn, store.tables(), object.id));
                if (!held || !store.pool().contains(object.id)) {
                    continue;
                }
                TRY(store.drop_fetchable(txn, object.id));
                ++now.objects;
                now.bytes += object.size;
            }
            return {};
        }));
        freed += now;
        objects = objects.subspan(batch.size());
    }
    return freed;
}

}  // namespace fbfs
