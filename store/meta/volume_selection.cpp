#include "store/meta/volume_selection.h"

#include <algorithm>

#include "store/base/printable.h"
#include "store/meta/store.h"

namespace fbfs {

Result<std::vector<std::string>> select_volumes(const Store& store,
                                                const std::vector<std::string>& asked) {
    TRY_ASSIGN(auto all, store.volumes());
    std::vector<std::string> names = asked;
    std::string known;
    for (const auto& v : all) {
        known += (known.empty() ? "" : ", ") + printable(v.name);
        if (asked.empty()) {
            names.push_back(v.name);
        }
    }
    for (const auto& name : names) {
        if (std::none_of(all.begin(), all.end(), [&](auto& v) { return v.name == name; })) {
            return make_error(ENOENT, fmt::format("the store {} has no volume '{}' (it has: {})",
                                                  store.root().string(), printable(name),
                                                  known.empty() ? "none" : known));
        }
    }
    return names;
}

Result<std::vector<VolumeLock>> lock_volumes(const Store& store,
                                             const std::vector<std::string>& names,
                                             std::string_view when_mounted) {
    // Asked first, which makes no file: a refusal leaves the store as it was, without even the
    // lock files of the volumes before the busy one.
    for (const auto& name : names) {
        if (auto pid = VolumeLock::holder(store.root(), name)) {
            return std::unexpected(VolumeLock::busy(store.root(), name, *pid, when_mounted));
        }
    }
    std::vector<VolumeLock> locks;
    for (const auto& name : names) {
        auto lock = VolumeLock::acquire(store.root(), name);
        if (!lock && lock.error().code == EBUSY) {
            return std::unexpected(
                VolumeLock::busy(store.root(), name,
                                 VolumeLock::holder(store.root(), name).value_or(0), when_mounted));
        }
        TRY(lock);
        locks.push_back(std::move(*lock));
    }
    return locks;
}

}  // namespace fbfs
