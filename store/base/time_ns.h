// TimeNs: a point in time as nanoseconds since the epoch, the form every stored time takes.
#pragma once

#include <cstdint>
#include <ctime>

namespace fbfs {

// Nanoseconds since the epoch; covers 1678..2262, which is what a build needs.
using TimeNs = std::int64_t;
TimeNs to_ns(const struct timespec& ts);
struct timespec to_timespec(TimeNs ns);
TimeNs now_ns();

}  // namespace fbfs
