// CompilerLog: a compiler launcher (CC=<launcher> gcc) that appends each command line to a log
// outside the mount before running it, so a test sees what a build really compiled and linked;
// and make_in(), make run in a directory with it.
#pragma once

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "tests/support/run.h"

namespace fbfs::test {

// What the launcher saw: the sources compiled (the argument after -c) and the other runs.
struct CompilerRuns {
    std::multiset<std::string> compiled;
    int links = 0;
    std::string log;
};

class CompilerLog {
public:
    // Writes the launcher and an empty log into `dir`.
    explicit CompilerLog(const std::filesystem::path& dir);

    std::string cc() const { return "CC=" + m_launcher.string() + " gcc"; }
    // The runs logged since the last take(), and an empty log for the next.
    CompilerRuns take() const;

private:
    std::filesystem::path m_launcher;
    std::filesystem::path m_log;
};

// `make CC=... ARGS` run in `dir`.
RunResult make_in(const std::filesystem::path& dir, const CompilerLog& cc,
                  const std::vector<std::string>& args = {});

}  // namespace fbfs::test
