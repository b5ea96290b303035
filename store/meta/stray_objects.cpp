#include "store/meta/stray_objects.h"

#include <sys/stat.h>

#include "store/meta/store.h"

namespace fbfs {

Result<std::vector<std::pair<ObjectId, std::uint64_t>>> stray_objects(
    const Store& store, const std::unordered_map<ObjectId, std::uint64_t>& pooled, TimeNs now) {
    std::vector<std::pair<ObjectId, std::uint64_t>> unnamed;
    TRY(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        for (const auto& [id, size] : pooled) {
            TRY_ASSIGN(auto refs, txn.get(store.tables().refs, id.raw()));
            if (!refs) {
                unnamed.emplace_back(id, size);
            }
        }
        return {};
    }));
    auto before = now - std::chrono::duration_cast<std::chrono::nanoseconds>(k_stray_age).count();
    std::vector<std::pair<ObjectId, std::uint64_t>> out;
    for (const auto& object : unnamed) {
        struct stat st {};
        if (::stat(store.pool().object_path(object.first).c_str(), &st) != 0) {
            continue;  // gone meanwhile
        }
        if (st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec < before) {
            out.push_back(object);
        }
    }
    return out;
}

}  // namespace fbfs
