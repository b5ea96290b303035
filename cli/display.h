// What the command line shows people: byte counts, durations, and a progress line for long work.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "store/base/progress.h"

namespace fbfs::cli {

// "512 B", "1.5 KiB", "6.8 MiB", ...
std::string human(std::uint64_t bytes);

// A JSON string literal of `text` (store paths may hold quotes or backslashes).
std::string json_string(std::string_view text);

// A one-line progress display on stderr, drawn at the first update and then at most ten times a
// second, shown only when stderr is a terminal: "fbfs pack: 45% 120.0 MiB of 266.0 MiB, 1234/5000
// objects, 85.2 MiB/s, 2 s left". clear() erases it before the summary is printed.
class ProgressLine {
public:
    explicit ProgressLine(std::string label);
    ~ProgressLine() { clear(); }
    ProgressLine(const ProgressLine&) = delete;
    ProgressLine& operator=(const ProgressLine&) = delete;

    void update(const Progress& progress);
    void clear();
    double seconds() const;  // since construction

private:
    std::string m_label;
    bool m_enabled;
    bool m_shown = false;
    std::chrono::steady_clock::time_point m_start;
    std::chrono::steady_clock::time_point m_last;
};

}  // namespace fbfs::cli
