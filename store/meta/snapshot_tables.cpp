#include "store/meta/snapshot_tables.h"

#include <string>
#include <vector>

#include "store/base/printable.h"
#include "store/meta/volume_times.h"

namespace fbfs {

namespace {

constexpr std::size_t k_key_prefix = sizeof(VolumeId);
constexpr std::size_t k_dirent_prefix = sizeof(VolumeId) + sizeof(InodeNumber);
constexpr std::size_t k_xattr_prefix = k_dirent_prefix;  // an attribute's key: the inode's, name

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

// Every linked inode of the volume whose rows start with `prefix` (orphans are left out).
Result<void> read_inodes(const LmdbTxn& txn, const Tables& tables, std::string_view prefix,
                         VolumeSnapshot& s) {
    Result<void> failed;
    TRY(for_each_prefix(txn, tables.inodes, prefix, [&](auto key, auto value) {
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
    }));
    return failed;
}

// Every directory entry of the volume, whiteouts included, in (parent, name) order.
Result<void> read_entries(const LmdbTxn& txn, const Tables& tables, std::string_view prefix,
                          VolumeSnapshot& s) {
    Result<void> failed;
    TRY(for_each_prefix(txn, tables.dirents, prefix, [&](auto key, auto value) {
        auto entry = DirentValue::decode(value);
        if (!entry || key.size() <= k_dirent_prefix) {
            failed = entry ? corrupt_key("directory entry") : std::unexpected(entry.error());
            return false;
        }
        s.entries.push_back(
            {parent_of_dirent_key(key), std::string(key.substr(k_dirent_prefix)), *entry});
        return true;
    }));
    return failed;
}

// Every lower-file stamp of the volume, in path order.
Result<void> read_stamps(const LmdbTxn& txn, const Tables& tables, std::string_view prefix,
                         VolumeSnapshot& s) {
    Result<void> failed;
    TRY(for_each_prefix(txn, tables.stamps, prefix, [&](auto key, auto value) {
        auto stamp = LowerStamp::decode(value);
        if (!stamp) {
            failed = std::unexpected(stamp.error());
            return false;
        }
        s.stamps.push_back({std::string(key.substr(k_key_prefix)), *stamp});
        return true;
    }));
    return failed;
}

// The attributes of the volume's linked inodes, in (inode, name) order (an orphan's go with it,
// as its record does).
Result<void> read_xattrs(const LmdbTxn& txn, const Tables& tables, std::string_view prefix,
                         VolumeSnapshot& s) {
    Result<void> failed;
    TRY(for_each_prefix(txn, tables.xattrs, prefix, [&](auto key, auto value) {
        auto ino = inode_of_key(key.substr(0, k_xattr_prefix));
        if (!ino || key.size() <= k_xattr_prefix) {
            failed = corrupt_key("attribute");
            return false;
        }
        if (s.inodes.contains(*ino)) {
            s.xattrs.push_back(
                {*ino, {std::string(key.substr(k_xattr_prefix)), std::string(value)}});
        }
        return true;
    }));
    return failed;
}

// The id volume `name` has, or the one it will take if the store has no such volume yet.
Result<VolumeId> volume_id_for(const LmdbTxn& txn, const Tables& tables, std::string_view name) {
    TRY_ASSIGN(auto raw, txn.get(tables.volumes, name));
    if (!raw) {
        return unused_volume_id(txn, tables);
    }
    TRY_ASSIGN(auto record, VolumeRecord::decode(*raw));
    return record.id;
}

}  // namespace

Result<void> delete_rows(LmdbTxn& txn, const Tables& tables, Dbi dbi, std::string_view prefix) {
    std::vector<std::string> keys;
    std::vector<ObjectId> objects;
    Result<void> failed;
    TRY(for_each_prefix(txn, dbi, prefix, [&](auto key, auto value) {
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
    }));
    TRY(failed);
    for (const auto& key : keys) {
        TRY(txn.del(dbi, key));
    }
    for (const auto& object : objects) {
        TRY(adjust_object_ref(txn, tables, object, -1));
    }
    return {};
}

namespace {

// Writes the snapshot's rows under volume `id`, each inode taking a reference to its object.
Result<void> put_rows(LmdbTxn& txn, const Tables& tables, VolumeId id, const VolumeSnapshot& s) {
    for (const auto& [ino, record] : s.inodes) {
        TRY(txn.put(tables.inodes, inode_key(id, ino), record.encode()));
        if (record.object) {
            TRY(adjust_object_ref(txn, tables, *record.object, +1));
        }
    }
    for (const auto& e : s.entries) {
        TRY(txn.put(tables.dirents, dirent_key(id, e.parent, e.name), e.value.encode()));
    }
    for (const auto& stamp : s.stamps) {
        TRY(txn.put(tables.stamps, stamp_key(id, stamp.path), stamp.stamp.encode()));
    }
    for (const auto& x : s.xattrs) {
        TRY(txn.put(tables.xattrs, xattr_key(id, x.ino, x.xattr.name), x.xattr.value));
    }
    return {};
}

}  // namespace

Result<VolumeSnapshot> read_snapshot(const LmdbTxn& txn, const Tables& tables,
                                     std::string_view name) {
    TRY_ASSIGN(auto raw, txn.get(tables.volumes, name));
    if (!raw) {
        return make_error(ENOENT, fmt::format("the store has no volume '{}'", printable(name)));
    }
    TRY_ASSIGN(auto record, VolumeRecord::decode(*raw));
    VolumeSnapshot s;
    s.name = std::string(name);
    s.next_inode = record.next_inode;
    std::string prefix = volume_prefix(record.id);
    TRY(read_inodes(txn, tables, prefix, s));
    TRY(read_entries(txn, tables, prefix, s));
    TRY(read_stamps(txn, tables, prefix, s));
    TRY(read_xattrs(txn, tables, prefix, s));
    return s;
}

Result<void> replace_volume(LmdbTxn& txn, const Tables& tables, const VolumeSnapshot& s) {
    TRY_ASSIGN(VolumeId id, volume_id_for(txn, tables, s.name));
    TRY_ASSIGN(auto existing, txn.get(tables.volumes, s.name));
    if (!existing) {
        TRY(note_volume_created(txn, tables, id, now_ns()));
    }
    // Out with the old rows (orphans included: the volume is not being served), then in with
    // the new, counting references as they come and go.
    std::string prefix = volume_prefix(id);
    for (Dbi dbi : {tables.inodes, tables.dirents, tables.stamps, tables.orphans, tables.xattrs}) {
        TRY(delete_rows(txn, tables, dbi, prefix));
    }
    TRY(put_rows(txn, tables, id, s));
    return txn.put(tables.volumes, s.name, VolumeRecord{id, s.next_inode}.encode());
}

}  // namespace fbfs
