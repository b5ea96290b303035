// NobodyMachine: a machine for one test of what an ordinary user meets (the user nobody),
// without changing the real machine for the tests running beside it: a temp dir nobody can use
// (home/, mnt/, bin/ owned by nobody), /dev/fuse device nodes of modes 0666 and 0600 to bind over
// the real one, and scripts run as nobody in a private mount namespace of their own (mounts
// planted there, and the fbfs mounts the script makes, go with it). A script may run as another
// uid too (as_user).
//
// Not thread-safe; one test thread owns each NobodyMachine.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fbfs::test {

inline constexpr uid_t k_nobody_uid = 65534;

// fbfs `args` run as nobody (setpriv, no supplementary groups), outside any NobodyMachine: for
// what a user other than root may do with a store nobody can write.
RunResult run_fbfs_as_nobody(const std::vector<std::string>& args);

// `s` quoted for /bin/sh.
std::string shell_quoted(const std::string& s);

class NobodyMachine {
public:
    NobodyMachine();  // requires root

    std::filesystem::path operator/(const std::string& name) const { return m_tmp / name; }

    // Runs `script` with /bin/sh as nobody, in a private mount namespace where each of `binds`
    // (source, target) is bind-mounted first; $FBFS is fbfs, $M the mountpoint tmp/mnt, HOME
    // tmp/home, PATH `path`. Any fbfs mount still there at the end is unmounted and fails the
    // test ("left mounted").
    RunResult as_nobody(
        const std::vector<std::pair<std::filesystem::path, std::filesystem::path>>& binds,
        const std::string& script, const std::string& path = "/usr/bin:/bin");
    // as_nobody(), as `uid` (and its gid) instead: a uid no other process has, so that what
    // counts against its limits is the script's alone. It needs no passwd entry; HOME, $M and
    // bin/ are still nobody's.
    RunResult as_user(
        uid_t uid,
        const std::vector<std::pair<std::filesystem::path, std::filesystem::path>>& binds,
        const std::string& script, const std::string& path = "/usr/bin:/bin");

    // A device node of the FUSE device with `mode` (0666 or 0600), to bind over /dev/fuse.
    std::pair<std::filesystem::path, std::filesystem::path> dev_fuse(mode_t mode) const;

private:
    TempDir m_tmp;
};

}  // namespace fbfs::test
