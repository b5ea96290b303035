#include "tests/torture/torture.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "tests/support/mount.h"
#include "tests/support/run.h"

extern char** environ;

namespace fbfs::test {

namespace fs = std::filesystem;

int trials_from_env(const char* name, int fallback) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') {
        return fallback;
    }
    char* end = nullptr;
    long value = std::strtol(text, &end, 10);
    if (*end != '\0' || value < 1 || value > 100000) {
        throw std::runtime_error(std::string(name) + "=" + text +
                                 " is not a number of trials (give a positive integer)");
    }
    return static_cast<int>(value);
}

std::uint64_t base_seed() {
    const char* text = std::getenv("FBFS_TORTURE_SEED");
    if (text != nullptr && *text != '\0') {
        return std::strtoull(text, nullptr, 10);
    }
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32 | device()) % 1000000000;
}

Child::Child(const std::vector<std::string>& argv, const fs::path& output) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<std::string> args = argv;
    std::vector<char*> c_args;
    for (auto& arg : args) {
        c_args.push_back(arg.data());
    }
    c_args.push_back(nullptr);
    int rc = posix_spawn(&m_pid, c_args[0], &actions, nullptr, c_args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        throw std::system_error(rc, std::generic_category(), "spawn " + argv.at(0));
    }
}

Child::~Child() {
    if (!m_status) {
        kill(SIGKILL);
        wait(std::chrono::seconds(30));
    }
}

std::optional<int> Child::wait(std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!m_status) {
        int status = 0;
        pid_t done = ::waitpid(m_pid, &status, WNOHANG);
        if (done == m_pid) {
            m_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        } else if (done < 0 && errno != EINTR) {
            m_status = -1;
        } else if (std::chrono::steady_clock::now() >= deadline) {
            break;
        } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    return m_status;
}

void Child::kill(int signal) {
    if (!m_status) {
        ::kill(m_pid, signal);
    }
}

std::vector<std::string> names_in_dir(const fs::path& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string store_digest(const fs::path& store) {
    auto result = run_cli({"stat", "--store", store.string(), "--digest"});
    if (result.status != 0 || result.out.size() != 65) {
        throw std::runtime_error("fbfs stat --digest of " + store.string() + " exited " +
                                 std::to_string(result.status) + ": " + result.err + result.out);
    }
    return result.out.substr(0, 64);
}

std::string verify_problems(const fs::path& store) {
    auto result = run_cli({"verify", "--store", store.string()});
    if (result.status == 0) {
        return "";
    }
    return "fbfs verify exited " + std::to_string(result.status) + ": " + result.out + result.err;
}

std::chrono::microseconds random_between(std::mt19937_64& random, std::chrono::microseconds low,
                                         std::chrono::microseconds high) {
    std::uniform_int_distribution<std::int64_t> pick(low.count(), high.count());
    return std::chrono::microseconds(pick(random));
}

Tally::Tally(std::string experiment, std::uint64_t seed)
    : m_experiment(std::move(experiment)),
      m_seed(seed),
      m_start(std::chrono::steady_clock::now()) {}

Tally::~Tally() {
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
    std::string counts;
    for (const auto& [name, n] : m_counts) {
        counts += "; " + name + ": " + std::to_string(n);
    }
    std::printf("torture: %s: %d trials, %d failed, %.1f s (FBFS_TORTURE_SEED=%llu)%s\n",
                m_experiment.c_str(), m_trials, m_failures, seconds,
                static_cast<unsigned long long>(m_seed), counts.c_str());
    std::fflush(stdout);
}

void Tally::trial(const std::string& what, const std::function<std::vector<std::string>()>& run) {
    std::vector<std::string> problems;
    try {
        problems = run();
    } catch (const std::exception& e) {
        problems.push_back(e.what());
    }
    ++m_trials;
    INFO(what);
    for (const auto& problem : problems) {
        FAIL_CHECK(problem);
    }
    if (problems.empty()) {
        return;
    }
    ++m_failures;
    std::printf("torture: %s: FAILED trial %d (%s):\n", m_experiment.c_str(), m_trials,
                what.c_str());
    for (const auto& problem : problems) {
        std::printf("    %s\n", problem.c_str());
    }
    std::fflush(stdout);
}

void Tally::count(const std::string& name, std::uint64_t n) {
    auto it = std::find_if(m_counts.begin(), m_counts.end(),
                           [&](const auto& entry) { return entry.first == name; });
    if (it == m_counts.end()) {
        m_counts.emplace_back(name, n);
    } else {
        it->second += n;
    }
}

fs::path copy_store(const fs::path& from, const fs::path& to) {
    fs::copy(from, to, fs::copy_options::recursive);
    return to;
}

std::chrono::steady_clock::duration timed_run(const std::vector<std::string>& argv) {
    auto start = std::chrono::steady_clock::now();
    auto result = run(argv);
    if (result.status != 0) {
        throw std::runtime_error(command_line(argv) + " exited " + std::to_string(result.status) +
                                 ": " + result.err);
    }
    return std::chrono::steady_clock::now() - start;
}

bool run_and_kill(const std::vector<std::string>& argv, std::chrono::microseconds delay,
                  const fs::path& log, std::vector<std::string>& problems) {
    Child child(argv, log);
    std::this_thread::sleep_for(delay);
    bool finished = child.wait(std::chrono::milliseconds(0)).has_value();
    child.kill(SIGKILL);
    auto status = child.wait(std::chrono::seconds(30));
    if (!status) {
        problems.push_back(command_line(argv) + " outlived SIGKILL by 30 s");
    } else if (finished && *status != 0) {
        problems.push_back(command_line(argv) + " failed before the kill, status " +
                           std::to_string(*status) + ": " + read_file(log));
    }
    return finished && status == 0;
}

}  // namespace fbfs::test
