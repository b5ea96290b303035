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

#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::test::check_refused;
using fbfs::test::require_root;
using fbfs::test::run;
using fbfs::test::RunOptions;
using fbfs::test::RunResult;
using fbfs::test::TempDir;

namespace {

constexpr uid_t k_nobody = 65534;

std::string quoted(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

// A machine for one test: a temp dir the user nobody can use, with a /dev/fuse of a chosen mode
// to bind over the real one.
class Machine {
public:
    Machine() {
        require_root();
        fs::permissions(m_tmp.path(), fs::perms(0755));
        make_device("fuse-0666", 0666);
        make_device("fuse-0600", 0600);
        for (const char* dir : {"home", "mnt", "bin"}) {
            fs::create_directory(m_tmp / dir);
            REQUIRE(::chown((m_tmp / dir).c_str(), k_nobody, k_nobody) == 0);
        }
    }

    fs::path operator/(const std::string& name) const { return m_tmp / name; }

    // Runs `script` with /bin/sh as nobody, in a private mount namespace where each of `binds`
    // (source, target) is bind-mounted first; $FBFS is fbfs, $M the mountpoint, PATH `path`. Any
    // fbfs mount still there at the end is unmounted (and reported as "left mounted").
    RunResult as_nobody(const std::vector<std::pair<fs::path, fs::path>>& binds,
                        const std::string& script, const std::string& path = "/usr/bin:/bin") {
        // A new namespace holds copies of other tests' FUSE mounts, and a copy would keep their
        // daemons alive after they unmount: let go of them here first.
        std::string outer =
            "set -u\n"
            "grep ' fuse' /proc/self/mounts | while read -r _ m t _; do case $t in fuse*) "
            "umount -l \"$(printf '%b' \"$m\")\";; esac; done\n";
        for (const auto& [from, to] : binds) {
            outer += "mount --bind " + quoted(from) + " " + quoted(to) + " || exit 90\n";
        }
        outer += "setpriv --reuid=65534 --regid=65534 --clear-groups env -i LC_ALL=C PATH=" +
                 quoted(path) + " HOME=" + quoted(m_tmp / "home") + " FBFS=" + quoted(FBFS_BINARY) +
                 " M=" + quoted(m_tmp / "mnt") + " /bin/sh -c " + quoted(script) +
                 "\nrc=$?\n"
                 "grep ' fuse.fbfs ' /proc/self/mounts | while read -r _ m _; do "
                 "echo \"left mounted: $m\" >&2; umount -l \"$m\"; done\n"
                 "exit $rc\n";
        auto result =
            run({"unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", outer},
                RunOptions{.cwd = "/", .env = {}, .input = {}});
        INFO("stderr: " << result.err << "\nstdout: " << result.out);
        REQUIRE(result.status != 90);
        CHECK(result.err.find("left mounted") == std::string::npos);
        return result;
    }

    std::pair<fs::path, fs::path> dev_fuse(mode_t mode) const {
        return {m_tmp / (mode == 0666 ? "fuse-0666" : "fuse-0600"), "/dev/fuse"};
    }

private:
    void make_device(const std::string& name, mode_t mode) {
        auto path = m_tmp / name;
        REQUIRE(::mknod(path.c_str(), S_IFCHR | mode, ::makedev(10, 229)) == 0);
        REQUIRE(::chmod(path.c_str(), mode) == 0);
    }

    TempDir m_tmp;
};

}  // namespace

TEST_CASE("fbfs mount: a /dev/fuse the user cannot open is named with its mode and the fix",
          "[fuse]") {
    Machine machine;
    auto result = machine.as_nobody({machine.dev_fuse(0600)}, "exec \"$FBFS\" mount \"$M\"");
    check_refused(result, {"/dev/fuse is not readable and writable by you", "mode 0600",
                           "chmod 0666 /dev/fuse"});
}

TEST_CASE("fbfs mount: a user without any fusermount3 is told to install the fuse3 package",
          "[fuse]") {
    Machine machine;
    auto result = machine.as_nobody({machine.dev_fuse(0666), {"/dev/null", "/usr/bin/fusermount3"}},
                                    "exec \"$FBFS\" mount \"$M\"");
    check_refused(result, {"fusermount3 is not installed", "apt-get install fuse3"});
    CHECK_FALSE(fs::exists(machine / "home" / ".cache" / "fbfs" / "meta"));
}

TEST_CASE("fbfs mount: a /usr/bin/fusermount3 that is not setuid is named, with the fix",
          "[fuse]") {
    Machine machine;
    fs::copy_file("/usr/bin/fusermount3", machine / "plain-fusermount3");
    fs::permissions(machine / "plain-fusermount3", fs::perms(0755));
    auto result = machine.as_nobody(
        {machine.dev_fuse(0666), {machine / "plain-fusermount3", "/usr/bin/fusermount3"}},
        "exec \"$FBFS\" mount \"$M\"");
    check_refused(result, {"/usr/bin/fusermount3 is not setuid root", "chmod u+s"});
}

TEST_CASE("fbfs mount and umount pass over a fusermount3 earlier on PATH that is not setuid",
          "[fuse]") {
    Machine machine;
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
    Machine machine;
    // A mountpoint the user cannot write: fusermount3 refuses it (as AppArmor does elsewhere).
    fs::create_directory(machine / "root-owned");
    auto script = "exec \"$FBFS\" mount " + quoted(machine / "root-owned");
    auto result = machine.as_nobody({machine.dev_fuse(0666)}, script);
    check_refused(result, {"could not mount " + (machine / "root-owned").string(),
                           "fusermount3: user has no write access to mountpoint"});
}
