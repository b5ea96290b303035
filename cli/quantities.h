// Sizes and durations as people type them on the command line (`fbfs gc --max-size 10G
// --older-than 7d`), read strictly: anything else is an Error naming the text and the forms
// that work.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/base/error.h"
#include "store/base/time_ns.h"

namespace fbfs::cli {

// A byte count: a number (decimals allowed) and an optional unit, as GNU coreutils reads them:
// K, M, G, T (or KiB, MiB, ...) are powers of 1024, KB, MB, GB, TB powers of 1000, B or none
// bytes. "10G", "1.5GiB", "500MB", "4096". `option` names the option in the error.
Result<std::uint64_t> parse_size(std::string_view text, std::string_view option);

// A duration: one or more numbers each with a unit, s, m, h, d or w ("90m", "7d", "1d12h").
// `option` names the option in the error.
Result<TimeNs> parse_duration(std::string_view text, std::string_view option);

// A time as UTC ISO 8601 to the second ("2026-12-03T11:40:05Z"), or with `nanoseconds` to the
// nanosecond ("2026-12-03T11:40:05.123456789Z"), which orders as the times do.
std::string utc_time(TimeNs when, bool nanoseconds = false);

}  // namespace fbfs::cli
