#include "store/meta/store_stats.h"

#include <map>
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
    TRY_ASSIGN(auto volumes, store.volumes());
    std::set<ObjectId> ids;
    for (const auto& volume : volumes) {
        TRY(for_each_inode(store, volume.record.id, [&](const InodeRecord& r) {
            if (r.object) {
                ids.insert(*r.object);
            }
        }));
    }
    return std::vector<ObjectId>(ids.begin(), ids.end());
}

Result<std::vector<LeakedXattr>> leaked_xattrs(const Store& store) {
    TRY_ASSIGN(auto volumes, store.volumes());
    std::map<VolumeId, std::string> names;
    for (const auto& v : volumes) {
        names[v.record.id] = v.name;
    }
    constexpr std::size_t k_inode_key = sizeof(VolumeId) + sizeof(InodeNumber);
    std::vector<LeakedXattr> leaked;
    auto walked = store.env().read([&](LmdbTxn& txn) -> Result<void> {
        Result<void> failed;
        std::string checked_key;  // an inode's attributes are adjacent: look it up once
        bool exists = false;
        auto scanned = for_each_prefix(txn, store.tables().xattrs, "", [&](auto key, auto) {
            auto ino = inode_of_key(key.substr(0, k_inode_key));
            if (key.size() <= k_inode_key || !ino) {
                failed = make_error(EIO, "corrupt attribute key in the store metadata");
                return false;
            }
            if (key.substr(0, k_inode_key) != checked_key) {
                checked_key = std::string(key.substr(0, k_inode_key));
                auto record = txn.get(store.tables().inodes, checked_key);
                if (!record) {
                    failed = std::unexpected(record.error());
                    return false;
                }
                exists = record->has_value();
            }
            if (!exists) {
                VolumeId id = 0;
                for (std::size_t i = 0; i < sizeof(VolumeId); ++i) {
                    id = id << 8 | static_cast<unsigned char>(key[i]);
                }
                auto name = names.find(id);
                leaked.push_back({name != names.end() ? name->second : fmt::format("#{}", id), *ino,
                                  std::string(key.substr(k_inode_key))});
            }
            return true;
        });
        return scanned ? failed : scanned;
    });
    return walked ? Result<std::vector<LeakedXattr>>(std::move(leaked))
                  : std::unexpected(walked.error());
}

Result<StoreStats> collect_stats(const Store& store) {
    StoreStats stats;
    TRY_ASSIGN(auto volumes, store.volumes());
    for (const auto& volume : volumes) {
        VolumeStats v{volume.name};
        TRY(for_each_inode(store, volume.record.id, [&](const InodeRecord& r) {
            v.files += r.is_reg() ? 1 : 0;
            v.directories += r.is_dir() ? 1 : 0;
            v.symlinks += r.is_symlink() ? 1 : 0;
            v.logical_bytes += r.is_reg() ? r.size : 0;
        }));
        stats.volumes.push_back(v);
    }
    TRY(store.pool().for_each([&](const ObjectId&, std::uint64_t size) {
        ++stats.objects;
        stats.stored_bytes += size;
    }));
    TRY_ASSIGN(auto referenced, referenced_objects(store));
    stats.referenced_objects = referenced.size();
    return stats;
}

}  // namespace fbfs
