// run(): runs a program to completion and captures what it printed, for tests that drive the fbfs
// binary or real tools (make, ninja, git) the way a user would.
#pragma once

#include <cstddef>
#include <initializer_list>
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
    std::string cwd;                         // empty: the test's own
    std::map<std::string, std::string> env;  // added to (or replacing in) the test's environment
    std::string input;                       // written to the program's standard input
};

RunResult run(const std::vector<std::string>& argv, const RunOptions& options = {});
// run() of the fbfs binary under test, with `args` after its name.
RunResult run_cli(const std::vector<std::string>& args, const RunOptions& options = {});
// Runs `script` with /bin/sh -c.
RunResult sh(const std::string& script, const RunOptions& options = {});

// The last `limit` characters of `text` ("..." and them, if cut): the end of a build log is where
// its error is.
std::string tail(const std::string& text, std::size_t limit = 4000);
// `argv` joined with single spaces, for messages.
std::string command_line(const std::vector<std::string>& argv);
// True if `name` is an executable file in a directory of $PATH (or, if it holds a slash, is one).
bool installed(const std::string& name);

// Runs the real tool argv[0] (make, ninja, cmake, git, ccache) under a 600 s time limit, so a
// mount that stops answering fails the test instead of hanging the run. Fails the test if the
// tool is not installed. MAKEFLAGS from a surrounding make is cleared, so `-n` or `-j` from
// outside cannot change what the build does.
RunResult run_tool(const std::vector<std::string>& argv, RunOptions options = {});
// run_tool(), requiring exit status 0; the failure message shows the command and its output.
RunResult run_tool_ok(const std::vector<std::string>& argv, const RunOptions& options = {});

// Asserts (Catch CHECKs) that a refused command failed the way a user can act on: exit status 1
// and exactly one line on stderr, "fbfs: ...", holding every one of `parts` (the thing and the
// fix).
void check_refused(const RunResult& result, std::initializer_list<std::string> parts);

}  // namespace fbfs::test
