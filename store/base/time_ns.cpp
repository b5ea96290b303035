#include "store/base/time_ns.h"

namespace fbfs {

TimeNs to_ns(const struct timespec& ts) {
    return static_cast<TimeNs>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct timespec to_timespec(TimeNs ns) {
    struct timespec ts {};
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    if (ts.tv_nsec < 0) {
        ts.tv_sec -= 1;
        ts.tv_nsec += 1'000'000'000;
    }
    return ts;
}

TimeNs now_ns() {
    struct timespec ts {};
    clock_gettime(CLOCK_REALTIME, &ts);
    return to_ns(ts);
}

}  // namespace fbfs
