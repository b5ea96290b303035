// Progress: how far a long store operation (pack, unpack) has come, for a display to show.
#pragma once

#include <cstdint>
#include <functional>

#include "store/base/error.h"

namespace fbfs {

struct Progress {
    std::uint64_t bytes_done = 0;  // of object bytes
    std::uint64_t bytes_total = 0;
    std::uint64_t objects_done = 0;
    std::uint64_t objects_total = 0;
};

// Called often (every chunk of bytes); cheap implementations only, or throttle inside. Returning
// false stops the operation: it fails with ECANCELED and cleans up as after any other error.
using ProgressFn = std::function<bool(const Progress&)>;

inline std::unexpected<Error> cancelled() {
    return make_error(ECANCELED, "interrupted; nothing was changed");
}

}  // namespace fbfs
