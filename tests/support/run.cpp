#include "tests/support/run.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "tests/support/temp_dir.h"

extern char** environ;

namespace fbfs::test {

namespace {

std::vector<std::string> merged_environment(const std::map<std::string, std::string>& extra) {
    std::map<std::string, std::string> all;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string entry(*e);
        auto eq = entry.find('=');
        if (eq != std::string::npos) {
            all[entry.substr(0, eq)] = entry.substr(eq + 1);
        }
    }
    for (const auto& [key, value] : extra) {
        all[key] = value;
    }
    std::vector<std::string> out;
    for (const auto& [key, value] : all) {
        out.push_back(key + "=" + value);
    }
    return out;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (auto& s : strings) {
        out.push_back(s.data());
    }
    out.push_back(nullptr);
    return out;
}

}  // namespace

RunResult run(const std::vector<std::string>& argv, const RunOptions& options) {
    TempDir io;
    write_file(io / "in", options.input);
    std::string in = (io / "in").string(), out = (io / "out").string(), err = (io / "err").string();

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (!options.cwd.empty()) {
        posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());
    }
    std::vector<std::string> args = argv;
    std::vector<std::string> env = merged_environment(options.env);
    auto c_args = c_strings(args);
    auto c_env = c_strings(env);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, c_args[0], &actions, nullptr, c_args.data(), c_env.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        throw std::system_error(rc, std::generic_category(), "spawn " + argv.at(0));
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    RunResult result;
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.out = read_file(out);
    result.err = read_file(err);
    return result;
}

RunResult run_cli(const std::vector<std::string>& args, const RunOptions& options) {
    std::vector<std::string> argv{FBFS_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, options);
}

RunResult sh(const std::string& script, const RunOptions& options) {
    return run({"/bin/sh", "-c", script}, options);
}

std::string tail(const std::string& text, std::size_t limit) {
    return text.size() <= limit ? text : "..." + text.substr(text.size() - limit);
}

std::string command_line(const std::vector<std::string>& argv) {
    std::string line;
    for (const auto& arg : argv) {
        line += (line.empty() ? "" : " ") + arg;
    }
    return line;
}

bool installed(const std::string& name) {
    if (name.find('/') != std::string::npos) {
        return ::access(name.c_str(), X_OK) == 0;
    }
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
        if (::access(candidate.c_str(), X_OK) == 0) {
            return true;
        }
    }
    return false;
}

void check_refused(const RunResult& result, std::initializer_list<std::string> parts) {
    INFO("stderr: " << result.err << "stdout: " << result.out);
    CHECK(result.status == 1);
    CHECK(result.err.starts_with("fbfs: "));
    CHECK(std::count(result.err.begin(), result.err.end(), '\n') == 1);
    CHECK(result.err.ends_with("\n"));
    for (const auto& part : parts) {
        CHECK_THAT(result.err, Catch::Contains(part));
    }
}

RunResult run_tool(const std::vector<std::string>& argv, RunOptions options) {
    INFO(argv.at(0)
         << " is not an executable on PATH (scripts/deps installs the tools these tests use)");
    REQUIRE(installed(argv.at(0)));
    std::vector<std::string> limited{"timeout", "-k", "10", "600"};
    limited.insert(limited.end(), argv.begin(), argv.end());
    options.env.emplace("MAKEFLAGS", "");
    options.env.emplace("MFLAGS", "");
    return run(limited, options);
}

RunResult run_tool_ok(const std::vector<std::string>& argv, const RunOptions& options) {
    auto result = run_tool(argv, options);
    INFO("`" << command_line(argv) << "` in " << (options.cwd.empty() ? "." : options.cwd)
             << " exited with status " << result.status << "\nstdout:\n"
             << tail(result.out) << "\nstderr:\n"
             << tail(result.err));
    REQUIRE(result.status == 0);
    return result;
}

}  // namespace fbfs::test
