// Processes: running a program as a child and waiting for it, and waiting for another process to
// be gone with every file it held (the daemon `fbfs umount` waits for). Stateless. run_program is
// for single-threaded callers (the CLI): its child prints its failures with stdio before exec.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "store/base/error.h"

namespace fbfs {

// Runs a program (in `cwd` if given) and returns its exit status: 128 + signal number if it was
// killed, 126 if it could not enter `cwd` and 127 if it could not be executed (each saying so on
// its stderr). With `errors`, its stderr is collected there instead of shown. Fails, naming the
// program, if no process could be started (pipe, fork) or waited for.
Result<int> run_program(const std::vector<std::string>& argv, const std::filesystem::path& cwd = {},
                        std::string* errors = nullptr);

// The error for a fork() that just failed (errno) while starting `what` ("fusermount3", "the
// fbfs daemon"): for EAGAIN, it says the process limit is reached.
Error fork_error(std::string_view what);

// Waits until every thread of `pid` has exited, and with the last one the files it held (a
// daemon's /dev/fuse and volume lock). A zombie leader is not gone while other threads of it run:
// the leader of a process turns zombie as soon as it exits itself, and the process's files stay
// open until its last thread is gone. Returns true once that happened (or there is no such
// process), false if `limit` passed first.
bool wait_until_exited(pid_t pid, std::chrono::milliseconds limit);

}  // namespace fbfs
