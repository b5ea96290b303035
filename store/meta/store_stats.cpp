#include "store/meta/store_stats.h"

#include <set>

namespace fbfs {

namespace {

// Calls `visit` with every inode record of `volume`.
Result<void> for_each_inode(const Store& store, VolumeId volume,
                            const std::function<void(const InodeRecord&)>& visit) {
    Result<void> decoded;
    auto walked = store.env().read([&](LmdbTxn& txn) -> Result<void> {
        return for_each_prefix(txn, store.tables().inodes, volume_prefix(volume),
                               [&](std::string_view, std::string_view value) {
                                   auto record = InodeRecord::decode(value);
                                   if (!record) {
                                       decoded = std::unexpected(record.error());
                                       return false;
                                   }
                                   visit(*record);
                                   return true;
                               });
    });
    return walked ? decoded : walked;
}

}  // namespace

Result<std::vector<ObjectId>> referenced_objects(const Store& store) {
    auto volumes = store.volumes();
    if (!volumes) {
        return std::unexpected(volumes.error());
    }
    std::set<ObjectId> ids;
    for (const auto& volume : *volumes) {
        auto ok = for_each_inode(store, volume.record.id, [&](const InodeRecord& r) {
            if (r.object) {
                ids.insert(*r.object);
            }
        });
        if (!ok) {
            return std::unexpected(ok.error());
        }
    }
    return std::vector<ObjectId>(ids.begin(), ids.end());
}

Result<StoreStats> collect_stats(const Store& store) {
    StoreStats stats;
    auto volumes = store.volumes();
    if (!volumes) {
        return std::unexpected(volumes.error());
    }
    for (const auto& volume : *volumes) {
        VolumeStats v{volume.name};
        auto ok = for_each_inode(store, volume.record.id, [&](const InodeRecord& r) {
            v.files += r.is_reg() ? 1 : 0;
            v.directories += r.is_dir() ? 1 : 0;
            v.symlinks += r.is_symlink() ? 1 : 0;
            v.logical_bytes += r.is_reg() ? r.size : 0;
        });
        if (!ok) {
            return std::unexpected(ok.error());
        }
        stats.volumes.push_back(v);
    }
    auto pooled = store.pool().for_each([&](const ObjectId&, std::uint64_t size) {
        ++stats.objects;
        stats.stored_bytes += size;
    });
    if (!pooled) {
        return std::unexpected(pooled.error());
    }
    auto referenced = referenced_objects(store);
    if (!referenced) {
        return std::unexpected(referenced.error());
    }
    stats.referenced_objects = referenced->size();
    return stats;
}

}  // namespace fbfs
