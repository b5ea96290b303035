// What the crash campaign's tests share: trial counts and seeds from the environment, child
// processes that can be killed at a chosen moment, the daemon behind a mount, a store's digest
// and temp files, and the tally each test prints for scripts/torture.
//
// Environment: FBFS_TORTURE_TRIALS (daemon kills), FBFS_TORTURE_PACK_TRIALS (kills of pack, and
// of unpack), FBFS_TORTURE_SEED (replays a run: each trial's seed is printed).
//
// Not thread-safe: one test thread owns each object.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace fbfs::test {

// The integer in environment variable `name`, or `fallback` if it is unset or empty. Throws
// std::runtime_error, naming it, if it is not a positive integer.
int trials_from_env(const char* name, int fallback);

// FBFS_TORTURE_SEED if set, else a fresh random seed.
std::uint64_t base_seed();

// A program started in the background, its stdout and stderr going to `output`. The destructor
// kills it (SIGKILL, by its pid) and reaps it if it still runs, so no test leaves one behind.
class Child {
public:
    Child(const std::vector<std::string>& argv, const std::filesystem::path& output);
    ~Child();
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const { return m_pid; }
    // Waits up to `limit` for it to exit; its exit status (128 + signal if killed), or nullopt
    // if it still runs.
    std::optional<int> wait(std::chrono::milliseconds limit);
    // Sends `signal` if it has not been reaped yet.
    void kill(int signal);

private:
    pid_t m_pid = -1;
    std::optional<int> m_status;
};

// The names in `dir` (a store's tmp/, a pack's directory), sorted; empty if it is missing.
std::vector<std::string> names_in_dir(const std::filesystem::path& dir);

// `fbfs stat --digest` of `store`. Throws std::runtime_error with what fbfs said if it fails.
std::string store_digest(const std::filesystem::path& store);

// What `fbfs verify` of `store` found: "" if it exits 0, else its exit status and output.
std::string verify_problems(const std::filesystem::path& store);

// A uniformly random duration in [`low`, `high`].
std::chrono::microseconds random_between(std::mt19937_64& random, std::chrono::microseconds low,
                                         std::chrono::microseconds high);

// Counts trials and failures of one experiment and prints, on stdout, one line per failed trial
// as it happens and a summary when it goes: what scripts/torture collects for RELIABILITY.md.
class Tally {
public:
    Tally(std::string experiment, std::uint64_t seed);
    ~Tally();
    Tally(const Tally&) = delete;
    Tally& operator=(const Tally&) = delete;

    // Runs one trial and records it: `run` returns its problems (an exception it throws is one).
    // Each problem is printed with `what` (the trial's seed and kill moment) and fails the
    // current Catch test without stopping it, so the other trials still run.
    void trial(const std::string& what, const std::function<std::vector<std::string>()>& run);
    // Adds to a named count printed in the summary ("pack completed before the kill: 3").
    void count(const std::string& name, std::uint64_t n = 1);
    int failures() const { return m_failures; }

private:
    std::string m_experiment;
    std::uint64_t m_seed;
    std::chrono::steady_clock::time_point m_start;
    int m_trials = 0;
    int m_failures = 0;
    std::vector<std::pair<std::string, std::uint64_t>> m_counts;
};

// Copies the store (or any tree) at `from` to `to`, which must not exist; returns `to`.
std::filesystem::path copy_store(const std::filesystem::path& from,
                                 const std::filesystem::path& to);

// Runs `argv` to its end; how long it took. Throws std::runtime_error if it fails.
std::chrono::steady_clock::duration timed_run(const std::vector<std::string>& argv);

// Starts `argv`, kills it (SIGKILL, by pid) after `delay`, and waits for it. Returns true if it
// had already finished by then, with exit status 0; what went wrong goes to `problems`.
bool run_and_kill(const std::vector<std::string>& argv, std::chrono::microseconds delay,
                  const std::filesystem::path& log, std::vector<std::string>& problems);

// Runs `trials` trials of `trial`. Even trials are killed at a moment drawn from 0 to 1.2 x
// `full`, odd ones from 0.85 to 1.15 x `full`: around the end, where the output is renamed into
// place and the store's one transaction commits.
template <class Trial>
void run_trials(const char* experiment, std::chrono::steady_clock::duration full,
                std::uint64_t seed, int trials, const Trial& trial) {
    Tally tally(experiment, seed);
    std::mt19937_64 random(seed);
    auto span = std::chrono::duration_cast<std::chrono::microseconds>(full);
    for (int i = 0; i < trials; ++i) {
        auto delay = i % 2 == 0 ? random_between(random, std::chrono::microseconds(0), span * 6 / 5)
                                : random_between(random, span * 17 / 20, span * 23 / 20);
        std::string what = "kill after " + std::to_string(delay.count() / 1000) + " ms of a " +
                           std::to_string(span.count() / 1000) + " ms run";
        tally.trial(what, [&] {
            TempDir dir;
            return trial(dir.path(), delay, tally);
        });
    }
}

}  // namespace fbfs::test
