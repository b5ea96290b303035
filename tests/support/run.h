// run(): runs a program to completion and captures what it printed, for tests that drive the fbfs
// binary or real tools (make, ninja, git) the way a user would.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace fbfs::test {

struct RunResult {
    int status = -1;  // exit status, or 128 + signal number
    std::string out;
    std::string err;
};

struct RunOptions {
    std::string cwd;                          // empty: the test's own
    std::map<std::string, std::string> env;   // added to (or replacing in) the test's environment
    std::string input;                        // written to the program's standard input
};

RunResult run(const std::vector<std::string>& argv, const RunOptions& options = {});
// run() of the fbfs binary under test, with `args` after its name.
RunResult run_cli(const std::vector<std::string>& args, const RunOptions& options = {});
inline RunResult fbfs(const std::vector<std::string>& args, const RunOptions& options = {}) {
    return run_cli(args, options);
}
// Runs `script` with /bin/sh -c.
RunResult sh(const std::string& script, const RunOptions& options = {});

}  // namespace fbfs::test
