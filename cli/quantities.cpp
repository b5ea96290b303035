#include "cli/quantities.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <ctime>
#include <utility>

namespace fbfs::cli {

namespace {

// Reads a non-negative decimal number ("12", "1.5") from the front of `text`.
bool take_number(std::string_view& text, double& value) {
    std::size_t end = 0;
    while (end < text.size() && ((text[end] >= '0' && text[end] <= '9') || text[end] == '.')) {
        ++end;
    }
    if (end == 0) {
        return false;
    }
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + end, value);
    if (ec != std::errc() || ptr != text.data() + end || !std::isfinite(value)) {
        return false;
    }
    text.remove_prefix(end);
    return true;
}

// The multiplier of a size unit, or 0 if `unit` is none.
double size_unit(std::string_view unit) {
    static const std::pair<std::string_view, double> units[] = {
        {"", 1.0},     {"B", 1.0},      {"K", 0x1p10}, {"KiB", 0x1p10},
        {"M", 0x1p20}, {"MiB", 0x1p20}, {"G", 0x1p30}, {"GiB", 0x1p30},
        {"T", 0x1p40}, {"TiB", 0x1p40}, {"KB", 1e3},   {"kB", 1e3},
        {"MB", 1e6},   {"GB", 1e9},     {"TB", 1e12},  {"k", 0x1p10},
    };
    for (auto [name, factor] : units) {
        if (name == unit) {
            return factor;
        }
    }
    return 0;
}

double duration_unit(char unit) {
    switch (unit) {
        case 's':
            return 1;
        case 'm':
            return 60;
        case 'h':
            return 3600;
        case 'd':
            return 86400;
        case 'w':
            return 7 * 86400;
        default:
            return 0;
    }
}

}  // namespace

Result<std::uint64_t> parse_size(std::string_view text, std::string_view option) {
    std::string_view rest = text;
    double value = 0;
    double factor = 0;
    if (take_number(rest, value)) {
        factor = size_unit(rest);
    }
    double bytes = std::round(value * factor);
    if (factor == 0 || bytes >= 0x1p63) {
        return make_error(EINVAL, fmt::format("invalid {} '{}' (give bytes with an optional unit: "
                                              "500M, 10G, 1.5GiB; K, M, G, T are powers of 1024, "
                                              "KB, MB, GB, TB of 1000)",
                                              option, text));
    }
    return static_cast<std::uint64_t>(bytes);
}

Result<TimeNs> parse_duration(std::string_view text, std::string_view option) {
    std::string_view rest = text;
    double seconds = 0;
    bool ok = !rest.empty();
    while (ok && !rest.empty()) {
        double value = 0;
        ok = take_number(rest, value) && !rest.empty() && duration_unit(rest.front()) > 0;
        if (ok) {
            seconds += value * duration_unit(rest.front());
            rest.remove_prefix(1);
        }
    }
    if (!ok || seconds * 1e9 >= 0x1p62) {
        return make_error(EINVAL, fmt::format("invalid {} '{}' (give a number and a unit, s, m, "
                                              "h, d or w: 90m, 12h, 7d, 1d12h)",
                                              option, text));
    }
    return static_cast<TimeNs>(seconds * 1e9);
}

std::string utc_time(TimeNs when, bool nanoseconds) {
    std::time_t seconds = static_cast<std::time_t>(when / 1'000'000'000);
    struct tm tm {};
    ::gmtime_r(&seconds, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return nanoseconds ? fmt::format("{}.{:09}Z", buf, when % 1'000'000'000)
                       : buf + std::string("Z");
}

}  // namespace fbfs::cli
