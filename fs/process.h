// Processes: running a program as a child and waiting for it, and watching another process's
// life (the daemon `fbfs umount` waits for). Stateless; safe from any thread, except that
// run_program forks, which a multi-threaded caller must only do before exec.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace fbfs {

// Runs a program (in `cwd` if given) and returns its exit status, 128 + signal if killed, or -1
// if it could not be started. With `errors`, its stderr is collected there instead of shown.
int run_program(const std::vector<std::string>& argv, const std::filesystem::path& cwd = {},
                std::string* errors = nullptr);

// True if `pid` has exited: no such process, or a zombie.
bool process_gone(pid_t pid);

}  // namespace fbfs
