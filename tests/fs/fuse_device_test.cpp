// What mounting needs from the machine (fs/fuse_device.cpp), as an ordinary user meets it: a
// /dev/fuse they can open and a setuid fusermount3, found even when a copy that is not setuid
// comes first on PATH (as on a hosted runner image once). Each fault is planted in a private
// mount namespace (`unshare --mount`), so the machine's own /dev/fuse and fusermount3 stay as
// they are for the tests running beside these; the namespace's mounts are gone when it ends,
// and every script unmounts what it mounted first.
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/nobody.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::test::check_refused;
using fbfs::test::NobodyMachine;
using fbfs::test::require_root;
using fbfs::test::run;
using fbfs::test::RunOptions;
using fbfs::test::RunResult;
using fbfs::test::shell_quoted;
using fbfs::test::TempDir;

TEST_CASE("fbfs mount: a /dev/fuse the user cannot open is named with its mode and the fix",
          "[fuse]") {
    NobodyMachine machine;
    auto result = machine.as_nobody({machine.dev_fuse(0600)}, "exec \"$FBFS\" mount \"$M\"");
    check_refused(result, {"/dev/fuse is not readable and writable by you", "mode 0600",
                           "chmod 0666 /dev/fuse"});
}

TEST_CASE("fbfs mount: a user without any fusermount3 is told to install the fuse3 package",
          "[fuse]") {
    NobodyMachine machine;
    auto result = machine.as_nobody({machine.dev_fuse(0666), {"/dev/null", "/usr/bin/fusermount3"}},
                                    "exec \"$FBFS\" mount \"$M\"");
    check_refused(result, {"fusermount3 is not installed", "apt-get install fuse3"});
    CHECK_FALSE(fs::exists(machine / "home" / ".cache" / "fbfs" / "meta"));
}

TEST_CASE("fbfs mount: a /usr/bin/fusermount3 that is not setuid is named, with the fix",
          "[fuse]") {
    NobodyMachine machine;
    fs::copy_file("/usr/bin/fusermount3", machine / "plain-fusermount3");
    fs::permissions(machine / "plain-fusermount3", fs::perms(0755));
    auto result = machine.as_nobody(
        {machine.dev_fuse(0666), {machine / "plain-fusermount3", "/usr/bin/fusermount3"}},
        "exec \"$FBFS\" mount \"$M\"");
    check_refused(result, {"/usr/bin/fusermount3 is not setuid root", "chmod u+s"});
}

TEST_CASE("fbfs mount and umount pass over a fusermount3 earlier on PATH that is not setuid",
          "[fuse]") {
    NobodyMachine machine;
    // What a runner image once had: a fusermount3 first on PATH that cannot mount. It records
    // that it ran, so the test sees that fbfs did not use it.
    auto decoy = machine / "bin" / "fusermount3";
    fbfs::test::write_file(decoy, "#!/bin/sh\ntouch \"$HOME/decoy-ran\"\nexit 1\n");
    fs::permissions(decoy, fs::perms(0755));
    auto result = machine.as_nobody({machine.dev_fuse(0666)},
                                    "\"$FBFS\" mount \"$M\" && echo hello > \"$M/file\" && "
                                    "\"$FBFS\" umount \"$M\" && \"$FBFS\" mount \"$M\" && "
                                    "cat \"$M/file\" && exec \"$FBFS\" umount \"$M\"",
                                    (machine / "bin").string() + ":/usr/bin:/bin");
    CHECK(result.status == 0);
    CHECK(result.out == "hello\n");
    CHECK_FALSE(fs::exists(machine / "home" / "decoy-ran"));
}

TEST_CASE("fbfs mount: fusermount3's own reason for refusing a mountpoint reaches the user",
          "[fuse]") {
    NobodyMachine machine;
    // A mountpoint the user cannot write: fusermount3 refuses it (as AppArmor does elsewhere).
    fs::create_directory(machine / "root-owned");
    auto script = "exec \"$FBFS\" mount " + shell_quoted(machine / "root-owned");
    auto result = machine.as_nobody({machine.dev_fuse(0666)}, script);
    check_refused(result, {"could not mount " + (machine / "root-owned").string(),
                           "fusermount3: user has no write access to mountpoint"});
}
