#include "cli/display.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace fbfs::cli {

std::string human(std::uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024 && unit < 4) {
        value /= 1024;
        ++unit;
    }
    return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, units[unit]);
}

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
            out += c;
        }
    }
    return out + "\"";
}

ProgressLine::ProgressLine(std::string label)
    : m_label(std::move(label)),
      m_enabled(::isatty(STDERR_FILENO) == 1),
      m_start(std::chrono::steady_clock::now()),
      m_last(m_start) {}

double ProgressLine::seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
}

void ProgressLine::update(const Progress& p) {
    auto now = std::chrono::steady_clock::now();
    if (!m_enabled || (m_shown && now - m_last < std::chrono::milliseconds(100))) {
        return;
    }
    m_last = now;
    double elapsed = seconds();
    double rate = elapsed > 0 ? static_cast<double>(p.bytes_done) / elapsed : 0;
    std::string eta = rate > 0 && p.bytes_total > p.bytes_done
                          ? fmt::format(", {:.0f} s left",
                                        static_cast<double>(p.bytes_total - p.bytes_done) / rate)
                          : "";
    auto percent = p.bytes_total ? 100 * p.bytes_done / p.bytes_total : 100;
    std::fprintf(stderr, "\r\033[K%s: %llu%% %s of %s, %llu/%llu objects, %s/s%s", m_label.c_str(),
                 static_cast<unsigned long long>(percent), human(p.bytes_done).c_str(),
                 human(p.bytes_total).c_str(), static_cast<unsigned long long>(p.objects_done),
                 static_cast<unsigned long long>(p.objects_total),
                 human(static_cast<std::uint64_t>(rate)).c_str(), eta.c_str());
    m_shown = true;
}

void ProgressLine::clear() {
    if (m_shown) {
        std::fprintf(stderr, "\r\033[K");
        m_shown = false;
    }
}

}  // namespace fbfs::cli
