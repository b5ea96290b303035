// The remote a store's metadata came from: `<store>/remote-origin`, one line, the base URL of the
// cache that `fbfs pull` installed volumes from (credentials are never written: RemoteUrl::base).
//
// While a store has an origin, an object its metadata names but its pool lacks is "remote, not
// fetched yet" (a lazy pull), not lost: `fbfs verify` counts it apart from corruption, and a
// mount fetches it from there on first read unless --remote or $FBFS_REMOTE names another. A
// store with no origin never had a lazy pull, so a missing object is damage.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "store/base/error.h"

namespace fbfs {

// The recorded base URL, or nullopt if the store has none. An Error if the file is unreadable.
Result<std::optional<std::string>> read_remote_origin(const std::filesystem::path& store_root);
// Records `base_url` (replacing any earlier one) by writing a temp file and renaming it.
Result<void> write_remote_origin(const std::filesystem::path& store_root,
                                 std::string_view base_url);

}  // namespace fbfs
