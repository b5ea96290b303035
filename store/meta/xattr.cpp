#include "store/meta/xattr.h"

#include <array>

namespace fbfs {

namespace {

constexpr std::array<std::string_view, 3> k_stored_namespaces = {"user.", "trusted.", "security."};

}  // namespace

bool is_stored_xattr_name(std::string_view name) {
    if (name.size() > k_xattr_name_max || name.find('\0') != std::string_view::npos) {
        return false;
    }
    for (auto prefix : k_stored_namespaces) {
        if (name.size() > prefix.size() && name.starts_with(prefix)) {
            return true;
        }
    }
    return false;
}

bool is_user_xattr_name(std::string_view name) {
    return name.starts_with("user.");
}

bool is_privileged_xattr_name(std::string_view name) {
    return name.starts_with("trusted.") || name.starts_with("security.");
}

}  // namespace fbfs
