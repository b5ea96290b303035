// Which volumes of a store a command that takes `--volume NAME...` works on (fbfs pack, fbfs
// push), and holding volumes against mounts while a command reads or changes them. Stateless.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "store/base/error.h"
#include "store/meta/volume_lock.h"

namespace fbfs {

class Store;

// The names `asked`, in that order, or every volume of `store` if `asked` is empty. ENOENT if one
// is not a volume of the store: "the store <root> has no volume '<name>' (it has: <names>)".
Result<std::vector<std::string>> select_volumes(const Store& store,
                                                const std::vector<std::string>& asked);

// Locks every volume of `names`, all or none (VolumeLock::acquire). EBUSY for one in use, from
// VolumeLock::busy() naming the holder's pid, with `when_mounted` as the fix when a mount serves
// it.
Result<std::vector<VolumeLock>> lock_volumes(const Store& store,
                                             const std::vector<std::string>& names,
                                             std::string_view when_mounted);

}  // namespace fbfs
