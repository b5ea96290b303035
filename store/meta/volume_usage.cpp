#include "store/meta/volume_usage.h"

#include <spdlog/spdlog.h>

namespace fbfs {

namespace {

// The object counts of `refs` for the objects of `held`, read in `txn`.
Result<void> read_refs(const LmdbTxn& txn, const Tables& tables,
                       const std::unordered_map<ObjectId, std::uint64_t>& wanted,
                       std::unordered_map<ObjectId, std::uint64_t>& refs) {
    for (const auto& [id, unused] : wanted) {
        TRY_ASSIGN(auto raw, txn.get(tables.refs, id.raw()));
        auto count = raw ? decode_u64(*raw) : std::optional<std::uint64_t>(0);
        if (!count) {
            return make_error(EIO, fmt::format("object {} has a corrupt reference count in the "
                                               "store metadata (run fbfs verify)",
                                               id.hex()));
        }
        refs[id] = *count;
    }
    return {};
}

}  // namespace

Result<ObjectUse> ObjectUse::read(const LmdbTxn& txn, const Tables& tables,
                                  const std::vector<VolumeInfo>& volumes) {
    ObjectUse use;
    std::unordered_map<ObjectId, std::uint64_t> named;
    for (const auto& volume : volumes) {
        auto& held = use.m_held[volume.record.id];
        Result<void> failed;
        TRY(for_each_prefix(txn, tables.inodes, volume_prefix(volume.record.id),
                            [&](auto, std::string_view value) {
                                auto record = InodeRecord::decode(value);
                                if (!record) {
                                    failed = std::unexpected(record.error());
                                    return false;
                                }
                                if (record->object) {
                                    auto& h = held[*record->object];
                                    ++h.count;
                                    h.size = record->size;
                                    named[*record->object] = 0;
                                }
                                return true;
                            }));
        TRY(failed);
    }
    TRY(read_refs(txn, tables, named, use.m_refs));
    return use;
}

Freed ObjectUse::exclusive(VolumeId id) const {
    Freed freed;
    auto volume = m_held.find(id);
    if (volume == m_held.end()) {
        return freed;
    }
    for (const auto& [object, held] : volume->second) {
        if (m_refs.at(object) <= held.count) {
            ++freed.objects;
            freed.bytes += held.size;
        }
    }
    return freed;
}

bool ObjectUse::names(VolumeId id, const ObjectId& object) const {
    auto volume = m_held.find(id);
    return volume != m_held.end() && volume->second.contains(object);
}

void ObjectUse::count_only(const std::function<bool(const ObjectId&)>& present) {
    for (auto& [volume, held] : m_held) {
        std::erase_if(held, [&](const auto& entry) { return !present(entry.first); });
    }
}

Freed ObjectUse::drop(VolumeId id) {
    Freed freed;
    auto volume = m_held.find(id);
    if (volume == m_held.end()) {
        return freed;
    }
    for (const auto& [object, held] : volume->second) {
        auto& left = m_refs.at(object);
        if (left > 0 && left <= held.count) {
            ++freed.objects;
            freed.bytes += held.size;
        }
        left = left > held.count ? left - held.count : 0;
    }
    m_held.erase(volume);
    return freed;
}

namespace {

// Counts, bytes and stamps of one volume; `usage.id` says which.
Result<void> count_volume(const LmdbTxn& txn, const Tables& tables, VolumeUsage& usage) {
    std::string prefix = volume_prefix(usage.id);
    Result<void> failed;
    TRY(for_each_prefix(txn, tables.inodes, prefix, [&](auto, std::string_view value) {
        auto r = InodeRecord::decode(value);
        if (!r) {
            failed = std::unexpected(r.error());
            return false;
        }
        if (r->nlink > 0) {
            usage.files += r->is_reg() ? 1 : 0;
            usage.directories += r->is_dir() ? 1 : 0;
            usage.symlinks += r->is_symlink() ? 1 : 0;
            usage.logical_bytes += r->is_reg() ? r->size : 0;
        }
        return true;
    }));
    TRY(failed);
    TRY(for_each_prefix(txn, tables.stamps, prefix, [&](auto, auto) {
        ++usage.stamps;
        return true;
    }));
    TRY_ASSIGN(usage.times, read_volume_times(txn, tables, usage.id));
    return {};
}

}  // namespace

void reap_after_commit(Store& store) {
    if (auto reaped = store.remove_dead_objects(); !reaped) {
        spdlog::warn("the objects the removal freed stay until the next gc or mount: {}",
                     reaped.error().message);
    }
}

Result<std::vector<VolumeInfo>> read_volumes(const LmdbTxn& txn, const Tables& tables) {
    std::vector<VolumeInfo> volumes;
    Result<void> decoded;
    TRY(for_each_prefix(txn, tables.volumes, "", [&](auto key, auto value) {
        auto record = VolumeRecord::decode(value);
        if (!record) {
            decoded = std::unexpected(record.error());
            return false;
        }
        volumes.push_back({std::string(key), *record});
        return true;
    }));
    TRY(decoded);
    return volumes;
}

Result<std::vector<VolumeUsage>> collect_volume_usage(const Store& store) {
    std::vector<VolumeUsage> out;
    TRY(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        TRY_ASSIGN(auto volumes, read_volumes(txn, store.tables()));
        TRY_ASSIGN(auto use, ObjectUse::read(txn, store.tables(), volumes));
        for (const auto& volume : volumes) {
            VolumeUsage usage;
            usage.name = volume.name;
            usage.id = volume.record.id;
            TRY(count_volume(txn, store.tables(), usage));
            usage.exclusive = use.exclusive(volume.record.id);
            out.push_back(std::move(usage));
        }
        return {};
    }));
    return out;
}

}  // namespace fbfs
