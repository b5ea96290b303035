#include "store/meta/snapshot_tables.h"

#include <string>
#include <vector>

namespace fbfs {

namespace {

constexpr std::size_t k_key_prefix = sizeof(VolumeId);
constexpr std::size_t k_dirent_prefix = sizeof(VolumeId) + sizeof(InodeNumber);

InodeNumber parent_of_dirent_key(std::string_view key) {
    InodeNumber parent = 0;
    for (std::size_t i = k_key_prefix; i < k_dirent_prefix; ++i) {
        parent = parent << 8 | static_cast<unsigned char>(key[i]);
    }
    return parent;
}

std::unexpected<Error> corrupt_key(std::string_view what) {
    return make_error(EIO,
                      fmt::format("corrupt {} key in the store metadata (run fbfs verify)", what));
}

}  // namespace

Result<VolumeSnapshot> read_snapshot(const LmdbTxn& txn, const Tables& tables,
                                     std::string_view name) {
    auto raw = txn.get(tables.volumes, name);
    if (!raw) {
        return std::unexpected(raw.error());
    }
    if (!*raw) {
        return make_error(ENOENT, fmt::format("the store has no volume '{}'", name));
    }
    auto record = VolumeRecord::decode(**raw);
    if (!record) {
        return std::unexpected(record.error());
    }
    VolumeSnapshot s;
    s.name = std::string(name);
    s.next_inode = record->next_inode;
    std::string prefix = volume_prefix(record->id);
    Result<void> failed;
    auto walked = for_each_prefix(txn, tables.inodes, prefix, [&](auto key, auto value) {
        auto ino = inode_of_key(key);
        auto inode = InodeRecord::decode(value);
        if (!inode || !ino) {
            failed = inode ? corrupt_key("inode") : std::unexpected(inode.error());
            return false;
        }
        if (inode->nlink > 0) {
            s.inodes.emplace(*ino, std::move(*inode));
        }
        return true;
    });
    if (walked) {
        walked = for_each_prefix(txn, tables.dirents, prefix, [&](auto key, auto value) {
            auto entry = DirentValue::decode(value);
            if (!entry || key.size() <= k_dirent_prefix) {
                failed = entry ? corrupt_key("directory entry") : std::unexpected(entry.error());
                return false;
            }
            s.entries.push_back(
                {parent_of_dirent_key(key), std::string(key.substr(k_dirent_prefix)), *entry});
            return true;
        });
    }
    if (walked) {
        walked = for_each_prefix(txn, tables.stamps, prefix, [&](auto key, auto value) {
            auto stamp = LowerStamp::decode(value);
            if (!stamp) {
                failed = std::unexpected(stamp.error());
                return false;
            }
            s.stamps.push_back({std::string(key.substr(k_key_prefix)), *stamp});
            return true;
        });
    }
    if (!walked) {
        return std::unexpected(walked.error());
    }
    if (!failed) {
        return std::unexpected(failed.error());
    }
    return s;
}

Result<void> replace_volume(LmdbTxn& txn, const Tables& tables, const VolumeSnapshot& s) {
    auto raw = txn.get(tables.volumes, s.name);
    if (!raw) {
        return std::unexpected(raw.error());
    }
    VolumeId id = 0;
    if (*raw) {
        auto record = VolumeRecord::decode(**raw);
        if (!record) {
            return std::unexpected(record.error());
        }
        id = record->id;
    } else {
        auto unused = unused_volume_id(txn, tables);
        if (!unused) {
            return std::unexpected(unused.error());
        }
        id = *unused;
    }

    // Out with the old rows (orphans included: the volume is not being served), then in with
    // the new, counting references as they come and go.
    std::string prefix = volume_prefix(id);
    for (Dbi dbi : {tables.inodes, tables.dirents, tables.stamps, tables.orphans}) {
        std::vector<std::string> keys;
        std::vector<ObjectId> objects;
        Result<void> failed;
        auto walked = for_each_prefix(txn, dbi, prefix, [&](auto key, auto value) {
            keys.emplace_back(key);
            if (dbi == tables.inodes) {
                auto record = InodeRecord::decode(value);
                if (!record) {
                    failed = std::unexpected(record.error());
                    return false;
                }
                if (record->object) {
                    objects.push_back(*record->object);
                }
            }
            return true;
        });
        if (!walked || !failed) {
            return walked ? failed : walked;
        }
        for (const auto& key : keys) {
            if (auto gone = txn.del(dbi, key); !gone) {
                return std::unexpected(gone.error());
            }
        }
        for (const auto& object : objects) {
            if (auto ok = adjust_object_ref(txn, tables, object, -1); !ok) {
                return ok;
            }
        }
    }
    for (const auto& [ino, record] : s.inodes) {
        if (auto put = txn.put(tables.inodes, inode_key(id, ino), record.encode()); !put) {
            return put;
        }
        if (record.object) {
            if (auto ok = adjust_object_ref(txn, tables, *record.object, +1); !ok) {
                return ok;
            }
        }
    }
    for (const auto& e : s.entries) {
        if (auto put = txn.put(tables.dirents, dirent_key(id, e.parent, e.name), e.value.encode());
            !put) {
            return put;
        }
    }
    for (const auto& stamp : s.stamps) {
        if (auto put = txn.put(tables.stamps, stamp_key(id, stamp.path), stamp.stamp.encode());
            !put) {
            return put;
        }
    }
    return txn.put(tables.volumes, s.name, VolumeRecord{id, s.next_inode}.encode());
}

}  // namespace fbfs
