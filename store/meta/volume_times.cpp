#include "store/meta/volume_times.h"

#include <vector>

#include "store/base/byte_codec.h"
#include "store/base/printable.h"
#include "store/meta/store.h"

namespace fbfs {

std::string VolumeTimes::encode() const {
    return ByteWriter().le(created).le(last_mounted).take();
}

Result<VolumeTimes> VolumeTimes::decode(std::string_view bytes) {
    VolumeTimes t;
    ByteReader in(bytes);
    // Later fields may follow: an older fbfs reads the ones it knows.
    if (!(in.le(t.created) && in.le(t.last_mounted))) {
        return make_error(EIO,
                          "corrupt volume times record in the store metadata (run fbfs "
                          "verify)");
    }
    return t;
}

Result<std::optional<VolumeTimes>> read_volume_times(const LmdbTxn& txn, const Tables& tables,
                                                     VolumeId id) {
    TRY_ASSIGN(auto raw, txn.get(tables.volume_times, volume_prefix(id)));
    if (!raw) {
        return std::optional<VolumeTimes>();
    }
    TRY_ASSIGN(auto times, VolumeTimes::decode(*raw));
    return std::optional<VolumeTimes>(times);
}

Result<void> note_volume_created(LmdbTxn& txn, const Tables& tables, VolumeId id, TimeNs now) {
    return txn.put(tables.volume_times, volume_prefix(id), VolumeTimes{now, 0}.encode());
}

Result<void> forget_volume_times(LmdbTxn& txn, const Tables& tables, VolumeId id) {
    TRY(txn.del(tables.volume_times, volume_prefix(id)));
    return {};
}

Result<void> note_volume_mounted(Store& store, std::string_view name, TimeNs now) {
    const Tables& t = store.tables();
    return store.env().write([&](LmdbTxn& txn) -> Result<void> {
        TRY_ASSIGN(auto raw, txn.get(t.volumes, name));
        if (!raw) {
            return make_error(ENOENT, fmt::format("the store has no volume '{}'", printable(name)));
        }
        TRY_ASSIGN(auto record, VolumeRecord::decode(*raw));
        TRY_ASSIGN(auto times, read_volume_times(txn, t, record.id));
        VolumeTimes updated = times.value_or(VolumeTimes{now, 0});
        updated.last_mounted = now;
        return txn.put(t.volume_times, volume_prefix(record.id), updated.encode());
    });
}

Result<std::size_t> date_untracked_volumes(Store& store, TimeNs now) {
    const Tables& t = store.tables();
    std::vector<VolumeId> untracked;
    auto find = [&](LmdbTxn& txn) -> Result<void> {
        untracked.clear();
        Result<void> failed;
        TRY(for_each_prefix(txn, t.volumes, "", [&](auto, auto value) {
            auto record = VolumeRecord::decode(value);
            auto times = record
                             ? read_volume_times(txn, t, record->id)
                             : Result<std::optional<VolumeTimes>>(std::unexpected(record.error()));
            if (!times) {
                failed = std::unexpected(times.error());
                return false;
            }
            if (!*times) {
                untracked.push_back(record->id);
            }
            return true;
        }));
        return failed;
    };
    TRY(store.env().read(find));
    if (untracked.empty()) {
        return std::size_t{0};
    }
    TRY(store.env().write([&](LmdbTxn& txn) -> Result<void> {
        TRY(find(txn));  // again, inside the transaction that writes
        for (VolumeId id : untracked) {
            TRY(note_volume_created(txn, t, id, now));
        }
        return {};
    }));
    return untracked.size();
}

}  // namespace fbfs
