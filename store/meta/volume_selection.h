// Which volumes of a store a command that takes `--volume NAME...` works on (fbfs pack, fbfs
// push). Stateless.
#pragma once

#include <string>
#include <vector>

#include "store/base/error.h"

namespace fbfs {

class Store;

// The names `asked`, in that order, or every volume of `store` if `asked` is empty. ENOENT if one
// is not a volume of the store: "the store <root> has no volume '<name>' (it has: <names>)".
Result<std::vector<std::string>> select_volumes(const Store& store,
                                                const std::vector<std::string>& asked);

}  // namespace fbfs
