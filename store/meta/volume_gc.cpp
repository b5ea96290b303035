#include "store/meta/volume_gc.h"

#include <unistd.h>

#include <algorithm>
#include <unordered_set>

#include "store/meta/fetchable_gc.h"
#include "store/meta/remote_objects.h"
#include "store/meta/stray_objects.h"
#include "store/meta/volume_lock.h"
#include "store/meta/volume_removal.h"

namespace fbfs {

namespace {

struct Candidate {
    std::string name;
    VolumeId id = 0;
    TimeNs last_used = 0;
};

// The volumes gc may drop, least recently used first; those without times (none once the store
// is open: see date_untracked_volumes) count as the oldest.
Result<std::vector<Candidate>> candidates(const LmdbTxn& txn, const Tables& tables,
                                          const std::vector<VolumeInfo>& volumes,
                                          const std::set<std::string>& keep) {
    std::vector<Candidate> out;
    for (const auto& v : volumes) {
        if (keep.contains(v.name)) {
            continue;
        }
        TRY_ASSIGN(auto times, read_volume_times(txn, tables, v.record.id));
        out.push_back({v.name, v.record.id, times ? times->last_used() : 0});
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.last_used < b.last_used; });
    return out;
}

// Whether the policy wants `c` gone, with the pool at `bytes`.
bool wanted(const GcPolicy& policy, const Candidate& c, std::uint64_t bytes, TimeNs now) {
    bool too_old = policy.older_than && c.last_used < now - *policy.older_than;
    bool too_big = policy.max_bytes && bytes > *policy.max_bytes;
    return too_old || too_big;
}

// Takes `name`'s lock, or says (nullopt) that something uses it. For a dry run, only asks.
Result<std::optional<VolumeLock>> take_if_free(const Store& store, const std::string& name,
                                               bool dry_run, bool& free) {
    if (dry_run) {
        free = !VolumeLock::holder(store.root(), name);
        return std::optional<VolumeLock>();
    }
    auto lock = VolumeLock::acquire(store.root(), name);
    if (!lock && lock.error().code != EBUSY) {
        return std::unexpected(lock.error());
    }
    free = lock.has_value();
    return lock ? std::optional<VolumeLock>(std::move(*lock)) : std::nullopt;
}

// Whether a process other than this one (a mount, a pack) holds volume `name`.
bool served_elsewhere(const Store& store, const std::string& name) {
    auto pid = VolumeLock::holder(store.root(), name);
    return pid && *pid != ::getpid();
}

// The objects phase: drops the least recently read pooled objects the remote holds while the
// pool is over policy.max_bytes; `bytes` and `pooled` follow what went.
Result<void> drop_fetchable(Store& store, const GcPolicy& policy, const ObjectUse& use,
                            const std::vector<VolumeInfo>& volumes,
                            std::unordered_map<ObjectId, std::uint64_t>& pooled,
                            std::uint64_t& bytes, GcReport& report) {
    if (!policy.max_bytes || bytes <= *policy.max_bytes ||
        (!policy.remote_missing && !policy.dry_run)) {
        return {};
    }
    std::vector<VolumeId> serving;
    for (const auto& v : volumes) {
        if (served_elsewhere(store, v.name)) {
            serving.push_back(v.record.id);
        }
    }
    auto in_use = [&](const ObjectId& id) {
        return std::any_of(serving.begin(), serving.end(),
                           [&](VolumeId v) { return use.names(v, id); });
    };
    std::vector<Fetchable> candidates;
    TRY(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        TRY_ASSIGN(candidates, fetchable_objects(txn, store.tables(), pooled, in_use));
        return {};
    }));
    std::vector<Fetchable> chosen;
    std::uint64_t left = bytes;
    for (const auto& c : candidates) {
        if (left <= *policy.max_bytes) {
            break;
        }
        if (policy.max_fetchable && chosen.size() == *policy.max_fetchable) {
            report.fetchable_capped = true;
            break;
        }
        chosen.push_back(c);
        left -= std::min(left, c.size);
    }
    if (!policy.dry_run && !chosen.empty()) {
        std::vector<ObjectId> ids;
        for (const auto& c : chosen) {
            ids.push_back(c.id);
        }
        auto missing = policy.remote_missing(ids);
        if (!missing) {
            report.remote_error = missing.error().message;
            return {};
        }
        std::unordered_set<ObjectId> lacked(missing->begin(), missing->end());
        if (!lacked.empty()) {
            TRY(store.env().write([&](LmdbTxn& txn) -> Result<void> {
                for (const auto& id : lacked) {
                    TRY(forget_remote_object(txn, store.tables(), id));
                }
                return {};
            }));
            std::erase_if(chosen, [&](const auto& c) { return lacked.contains(c.id); });
        }
        report.remote_lacked = lacked.size();
        TRY_ASSIGN(report.fetchable, drop_fetchable_objects(store, chosen));
    } else {
        for (const auto& c : chosen) {
            report.fetchable += Freed{1, c.size};
        }
    }
    for (const auto& c : chosen) {
        pooled.erase(c.id);
    }
    bytes -= std::min(bytes, report.fetchable.bytes);
    return {};
}

}  // namespace

Result<GcReport> collect_garbage(Store& store, const GcPolicy& policy, TimeNs now) {
    GcReport report;
    if (!policy.dry_run) {
        TRY(store.remove_dead_objects());  // what a crash left listed
    }
    std::unordered_map<ObjectId, std::uint64_t> pooled;
    TRY(store.pool().for_each([&](const ObjectId& id, std::uint64_t size) {
        ++report.objects_before;
        report.bytes_before += size;
        pooled.emplace(id, size);
    }));
    TRY_ASSIGN(auto strays, stray_objects(store, pooled, now));
    std::vector<ObjectId> stray_ids;
    for (const auto& [id, size] : strays) {
        stray_ids.push_back(id);
        report.strays += Freed{1, size};
        pooled.erase(id);
    }
    if (!policy.dry_run && !stray_ids.empty()) {
        TRY(store.remove_if_unreferenced(stray_ids));
    }
    const Tables& t = store.tables();
    std::vector<Candidate> order;
    std::vector<VolumeInfo> volumes;
    std::optional<ObjectUse> use;
    TRY(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        TRY_ASSIGN(volumes, read_volumes(txn, t));
        TRY_ASSIGN(order, candidates(txn, t, volumes, policy.keep));
        TRY_ASSIGN(auto read, ObjectUse::read(txn, t, volumes));
        use = std::move(read);
        return {};
    }));
    std::uint64_t bytes = report.bytes_before - report.strays.bytes;
    TRY(drop_fetchable(store, policy, *use, volumes, pooled, bytes, report));
    if (report.fetchable_capped) {
        order.clear();  // objects that cost nothing to drop are left: no volume goes this time
    }
    auto is_pooled = [&](const ObjectId& id) { return pooled.contains(id); };
    use->count_only(is_pooled);
    std::vector<VolumeLock> locks;
    for (const auto& c : order) {
        if (!wanted(policy, c, bytes, now)) {
            break;  // the rest are newer, and the store only shrinks
        }
        bool free = false;
        TRY_ASSIGN(auto lock, take_if_free(store, c.name, policy.dry_run, free));
        if (!free) {
            report.busy.push_back(c.name);
            continue;
        }
        if (lock) {
            locks.push_back(std::move(*lock));
        }
        Freed freed = use->drop(c.id);
        bytes -= std::min(bytes, freed.bytes);
        report.dropped.push_back({c.name, c.last_used, freed});
    }
    report.bytes_after = bytes;
    if (policy.dry_run || report.dropped.empty()) {
        return report;
    }
    TRY(store.env().write([&](LmdbTxn& txn) -> Result<void> {
        // Counted again inside the transaction that removes, so the figures are exact.
        TRY_ASSIGN(auto now_volumes, read_volumes(txn, t));
        TRY_ASSIGN(auto exact, ObjectUse::read(txn, t, now_volumes));
        exact.count_only(is_pooled);
        report.bytes_after = report.bytes_before - report.strays.bytes - report.fetchable.bytes;
        for (auto& dropped : report.dropped) {
            auto id = std::find_if(order.begin(), order.end(), [&](const auto& c) {
                          return c.name == dropped.name;
                      })->id;
            dropped.freed = exact.drop(id);
            report.bytes_after -= std::min(report.bytes_after, dropped.freed.bytes);
            TRY(delete_volume(txn, t, dropped.name));
        }
        return {};
    }));
    reap_after_commit(store);
    return report;
}

}  // namespace fbfs
