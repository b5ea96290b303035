#include "store/meta/volume_removal.h"

#include <algorithm>
#include <set>
#include <unordered_set>

#include "store/base/printable.h"
#include "store/meta/snapshot_tables.h"
#include "store/meta/volume_selection.h"
#include "store/meta/volume_times.h"

namespace fbfs {

namespace {

std::unexpected<Error> no_such_volume(std::string_view name, std::string_view nothing_done) {
    return make_error(ENOENT, fmt::format("the store has no volume '{}' (fbfs volume list shows "
                                          "its volumes); {}",
                                          printable(name), nothing_done));
}

// Removes the logs a volume's daemons left (<store>/log/<volume>.*).
void remove_logs(const Store& store, const std::string& name) {
    std::error_code ec;
    std::filesystem::remove(store.root() / "log" / (name + ".log"), ec);
    std::filesystem::remove(store.root() / "log" / (name + ".source"), ec);
}

// Copies the attribute rows of volume `from`'s inodes in `keep` to volume `to`.
Result<void> copy_xattrs(LmdbTxn& txn, const Tables& tables, VolumeId from, VolumeId to,
                         const VolumeSnapshot& keep) {
    std::vector<std::pair<std::string, std::string>> rows;
    constexpr std::size_t k_inode_key = sizeof(VolumeId) + sizeof(InodeNumber);
    TRY(for_each_prefix(txn, tables.xattrs, volume_prefix(from), [&](auto key, auto value) {
        auto ino = inode_of_key(key.substr(0, k_inode_key));
        if (ino && keep.inodes.contains(*ino)) {
            std::string moved = volume_prefix(to);
            moved.append(key.substr(sizeof(VolumeId)));
            rows.emplace_back(std::move(moved), std::string(value));
        }
        return true;
    }));
    for (const auto& [key, value] : rows) {
        TRY(txn.put(tables.xattrs, key, value));
    }
    return {};
}

Result<VolumeId> volume_id(const LmdbTxn& txn, const Tables& tables, std::string_view name,
                           std::string_view nothing_done) {
    TRY_ASSIGN(auto raw, txn.get(tables.volumes, name));
    if (!raw) {
        return no_such_volume(name, nothing_done);
    }
    TRY_ASSIGN(auto record, VolumeRecord::decode(*raw));
    return record.id;
}

// Refuses a copy from a volume the store lacks, or onto one it has.
Result<void> check_copy(const LmdbTxn& txn, const Tables& t, const std::string& from,
                        const std::string& to) {
    TRY_ASSIGN(auto existing, txn.get(t.volumes, to));
    if (existing) {
        return make_error(EEXIST, fmt::format("volume '{}' exists already (remove it with fbfs "
                                              "volume rm, or copy to another name); nothing "
                                              "was copied",
                                              to));
    }
    TRY(volume_id(txn, t, from, "nothing was copied"));
    return {};
}

}  // namespace

Result<void> delete_volume(LmdbTxn& txn, const Tables& tables, std::string_view name) {
    TRY_ASSIGN(VolumeId id, volume_id(txn, tables, name, "nothing was removed"));
    std::string prefix = volume_prefix(id);
    for (Dbi dbi : {tables.inodes, tables.dirents, tables.stamps, tables.orphans, tables.xattrs}) {
        TRY(delete_rows(txn, tables, dbi, prefix));
    }
    TRY(forget_volume_times(txn, tables, id));
    TRY(txn.del(tables.volumes, name));
    return {};
}

Result<Removal> remove_volumes(Store& store, std::vector<std::string> names, bool dry_run) {
    std::set<std::string> seen;
    std::erase_if(names, [&](const std::string& n) { return !seen.insert(n).second; });
    for (const auto& name : names) {
        TRY(check_volume_name(name));
    }
    // Every name must exist before anything is locked: an unknown name is the likelier mistake.
    const Tables& t = store.tables();
    TRY(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        for (const auto& name : names) {
            TRY(volume_id(txn, t, name, "nothing was removed"));
        }
        return {};
    }));
    // A dry run only asks whether each volume is free, so it leaves not even a lock file.
    std::vector<VolumeLock> locks;
    for (const auto& name : names) {
        if (auto pid = dry_run ? VolumeLock::holder(store.root(), name) : std::nullopt) {
            return std::unexpected(
                VolumeLock::busy(store.root(), name, *pid, "unmount it with fbfs umount first"));
        }
    }
    if (!dry_run) {
        TRY_ASSIGN(locks, lock_volumes(store, names,
                                       "unmount it with fbfs umount first; nothing was removed"));
    }
    Removal removal;
    auto plan = [&](LmdbTxn& txn) -> Result<void> {
        removal = {};
        TRY_ASSIGN(auto volumes, read_volumes(txn, t));
        TRY_ASSIGN(auto use, ObjectUse::read(txn, t, volumes));
        for (const auto& name : names) {
            TRY_ASSIGN(VolumeId id, volume_id(txn, t, name, "nothing was removed"));
            Freed freed = use.drop(id);
            removal.volumes.emplace_back(name, freed);
            removal.total += freed;
        }
        return {};
    };
    if (dry_run) {
        TRY(store.env().read(plan));
        return removal;
    }
    TRY(store.env().write([&](LmdbTxn& txn) -> Result<void> {
        TRY(plan(txn));
        for (const auto& name : names) {
            TRY(delete_volume(txn, t, name));
        }
        return {};
    }));
    for (const auto& name : names) {
        remove_logs(store, name);
    }
    reap_after_commit(store);
    return removal;
}

Result<std::size_t> copy_volume(Store& store, const std::string& from, const std::string& to) {
    TRY(check_volume_name(from));
    TRY(check_volume_name(to));
    if (from == to) {
        return make_error(EINVAL, fmt::format("cannot copy volume '{}' onto itself (give another "
                                              "name for the copy)",
                                              from));
    }
    const Tables& t = store.tables();
    std::size_t copied = 0;
    auto copy = [&](LmdbTxn& txn) -> Result<void> {
        TRY(check_copy(txn, t, from, to));
        TRY_ASSIGN(VolumeId from_id, volume_id(txn, t, from, "nothing was copied"));
        TRY_ASSIGN(auto snapshot, read_snapshot(txn, t, from));
        snapshot.name = to;
        TRY(replace_volume(txn, t, snapshot));
        TRY_ASSIGN(VolumeId to_id, volume_id(txn, t, to, "nothing was copied"));
        TRY(copy_xattrs(txn, t, from_id, to_id, snapshot));
        copied = snapshot.inodes.size();
        return {};
    };
    // The names are checked before the lock is taken, so a refusal leaves not even a lock file.
    TRY(store.env().read([&](LmdbTxn& txn) { return check_copy(txn, t, from, to); }));
    TRY_ASSIGN(auto locks,
               lock_volumes(store, {to}, "unmount it with fbfs umount first; nothing was copied"));
    TRY(store.env().write(copy));
    return copied;
}

}  // namespace fbfs
