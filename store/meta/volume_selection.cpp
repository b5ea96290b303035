#include "store/meta/volume_selection.h"

#include <algorithm>

#include "store/meta/store.h"

namespace fbfs {

Result<std::vector<std::string>> select_volumes(const Store& store,
                                                const std::vector<std::string>& asked) {
    TRY_ASSIGN(auto all, store.volumes());
    std::vector<std::string> names = asked;
    std::string known;
    for (const auto& v : all) {
        known += (known.empty() ? "" : ", ") + v.name;
        if (asked.empty()) {
            names.push_back(v.name);
        }
    }
    for (const auto& name : names) {
        if (std::none_of(all.begin(), all.end(), [&](auto& v) { return v.name == name; })) {
            return make_error(
                ENOENT, fmt::format("the store {} has no volume '{}' (it has: {})",
                                    store.root().string(), name, known.empty() ? "none" : known));
        }
    }
    return names;
}

}  // namespace fbfs
