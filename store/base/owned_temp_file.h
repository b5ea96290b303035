// Temp files that say whose they are, so whoever comes next can remove the ones a killed process
// left: "<prefix><pid>-XXXXXX", flock()ed by the process writing it for as long as it has it open.
//
// A file is abandoned when the pid its name holds is gone and no process holds its lock (a writer
// in another pid namespace does: its pid means nothing here). The pid covers the moment between
// creating the file and locking it; the lock covers pids of other namespaces. A file without a
// pid (an older fbfs's) is never taken for abandoned: its writer cannot be told.
//
// Plain functions over the filesystem; safe to call from any thread or process.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "store/base/error.h"
#include "store/base/unique_fd.h"

namespace fbfs {

struct OwnedTempFile {
    UniqueFd fd;  // open for reading and writing, holding the file's flock; closing it lets go
    std::filesystem::path path;
};

// Creates "<dir>/<prefix><this pid>-XXXXXX" (mode 0600) and locks it. The Error names `dir` if
// the file cannot be created there.
Result<OwnedTempFile> create_owned_temp(const std::filesystem::path& dir, std::string_view prefix);

// True if file `name` of `dir` is "<prefix><pid>-..." and abandoned (see above).
bool is_abandoned_temp(const std::filesystem::path& dir, const std::string& name,
                       std::string_view prefix);

// Removes the abandoned temp files of `prefix` in `dir`; returns how many. Best effort: one that
// cannot be removed (or a `dir` that cannot be read) stays for the next caller.
std::size_t remove_abandoned_temps(const std::filesystem::path& dir, std::string_view prefix);

}  // namespace fbfs
