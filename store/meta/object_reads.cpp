#include "store/meta/object_reads.h"

#include "store/meta/store.h"

namespace fbfs {

void ReadLog::object_read(const ObjectId& id) noexcept {
    LockGuard lock(m_mutex);
    try {
        m_ids.insert(id);
    } catch (const std::bad_alloc&) {
        // Only an ordering hint for gc is lost.
    }
}

Result<std::size_t> ReadLog::flush(Store& store, TimeNs now) {
    std::unordered_set<ObjectId> ids;
    {
        LockGuard lock(m_mutex);
        ids.swap(m_ids);
    }
    if (ids.empty()) {
        return 0;
    }
    const Tables& t = store.tables();
    auto written = store.env().write([&](LmdbTxn& txn) -> Result<void> {
        std::string when = encode_u64(static_cast<std::uint64_t>(now));
        for (const auto& id : ids) {
            TRY(txn.put(t.object_reads, id.raw(), when));
        }
        return {};
    });
    if (!written) {
        LockGuard lock(m_mutex);
        m_ids.merge(ids);
        return std::unexpected(written.error());
    }
    return ids.size();
}

Result<std::optional<TimeNs>> read_last_read(const LmdbTxn& txn, const Tables& tables,
                                             const ObjectId& id) {
    TRY_ASSIGN(auto raw, txn.get(tables.object_reads, id.raw()));
    if (!raw) {
        return std::nullopt;
    }
    auto when = decode_u64(*raw);
    if (!when) {
        return make_error(EIO, fmt::format("object {} has a corrupt last-read time in the store "
                                           "metadata (run fbfs verify)",
                                           id.hex()));
    }
    return static_cast<TimeNs>(*when);
}

}  // namespace fbfs
