// Permissions on a mount as another user meets them: with --allow-other, the unprivileged user
// `nobody` reads, writes, renames and changes only what ext4 would let it, setuid and setgid bits
// go away when ext4 drops them, ctime moves when ext4 moves it, and setgid directories pass on
// their group. Each sequence runs with real tools (sh, coreutils) both on the mount and in a
// native directory beside it (ext4 on the test machines), and the two must agree; the outcome a
// user relies on is asserted as well, so a host that disagrees with POSIX fails too.
//
// Everything here needs root (to make files as root, chown them and become nobody); run as
// another user the tests say so and assert nothing.
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "tests/support/mount.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/support/umask.h"

namespace fs = std::filesystem;
using fbfs::test::MountedStore;
using fbfs::test::require_root;
using fbfs::test::run;
using fbfs::test::RunOptions;
using fbfs::test::RunResult;
using fbfs::test::TempDir;

namespace {

constexpr const char* k_nobody = "65534";
// A group nobody is not in, for setgid cases.
constexpr const char* k_other_group = "1234";

// A clean environment, so tools print the C locale's messages ("Permission denied").
std::vector<std::string> clean_sh(const std::string& script) {
    return {"env", "-i", "PATH=/usr/bin:/bin", "LC_ALL=C", "/bin/sh", "-c", script};
}

RunResult sh_as_root(const fs::path& dir, const std::string& script) {
    return run(clean_sh(script), RunOptions{.cwd = dir.string(), .env = {}, .input = {}});
}

// Runs `script` in `dir` as nobody:nogroup with no supplementary groups.
RunResult sh_as_nobody(const fs::path& dir, const std::string& script) {
    std::vector<std::string> argv{"setpriv", std::string("--reuid=") + k_nobody,
                                  std::string("--regid=") + k_nobody, "--clear-groups"};
    auto shell = clean_sh(script);
    argv.insert(argv.end(), shell.begin(), shell.end());
    return run(argv, RunOptions{.cwd = dir.string(), .env = {}, .input = {}});
}

enum class As { root, nobody };

RunResult sh_in(As who, const fs::path& dir, const std::string& script) {
    return who == As::root ? sh_as_root(dir, script) : sh_as_nobody(dir, script);
}

const char* filesystem_name(const fs::path& dir) {
    struct statfs st {};
    if (::statfs(dir.c_str(), &st) != 0) {
        return "unknown";
    }
    switch (st.f_type) {
        case 0xEF53:
            return "ext4";
        case 0x01021994:
            return "tmpfs";
        case 0x9123683E:
            return "btrfs";
        case 0x58465342:
            return "xfs";
        default:
            return "other";
    }
}

// A mount made by root with --allow-other (store tmp/store, mountpoint tmp/mnt) and a native
// directory tmp/native beside it, both root's and 0755, under a directory anyone may walk.
class MountAndNative {
public:
    MountAndNative() : m_mounted({"--allow-other"}) {
        fs::permissions(m_mounted.tmp.path(), fs::perms(0755));
        fs::create_directory(native());
        fs::permissions(native(), fs::perms(0755));
        fs::permissions(mount(), fs::perms(0755));
    }

    fs::path mount() const { return m_mounted.mount.path(); }
    fs::path native() const { return m_mounted.tmp / "native"; }

    // Runs `script` as `who` in the native directory, then on the mount; checks that both
    // printed the same and exited the same, and returns what the mount gave.
    RunResult same_on_both(As who, const std::string& script) const {
        auto on_native = sh_in(who, native(), script);
        auto on_mount = sh_in(who, mount(), script);
        INFO("as " << (who == As::root ? "root" : "nobody") << ": " << script);
        INFO("native (" << filesystem_name(native()) << "): status " << on_native.status
                        << ", stdout [" << on_native.out << "], stderr [" << on_native.err << "]");
        INFO("mount: status " << on_mount.status << ", stdout [" << on_mount.out << "], stderr ["
                              << on_mount.err << "]");
        CHECK(on_mount.status == on_native.status);
        CHECK(on_mount.out == on_native.out);
        CHECK(on_mount.err == on_native.err);
        return on_mount;
    }

    // Runs set-up steps as root on both sides; they must succeed.
    void set_up(const std::string& script) const {
        for (const auto& dir : {native(), mount()}) {
            auto result = sh_as_root(dir, script);
            INFO("set-up in " << dir << ": " << script << "\nstderr: " << result.err);
            REQUIRE(result.status == 0);
        }
    }

private:
    MountedStore m_mounted;
};

// Asserts that a command failed the way a tool reports `reason` (strerror text).
void check_failed_with(const RunResult& result, const std::string& reason) {
    INFO("status " << result.status << ", stderr: " << result.err);
    CHECK(result.status != 0);
    CHECK_THAT(result.err, Catch::Contains(reason));
}

void check_succeeded(const RunResult& result) {
    INFO("stderr: " << result.err);
    CHECK(result.status == 0);
}

std::int64_t ctime_ns(const fs::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        throw std::system_error(errno, std::generic_category(), "stat " + path.string());
    }
    return static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
}

}  // namespace

// ---- another user on a root-made mount -----------------------------------------------------

TEST_CASE("Permissions: with --allow-other another user reads only what the modes let it read",
          "[fuse]") {
    require_root();
    MountAndNative sides;
    sides.set_up("echo public > pub && chmod 644 pub && echo secret > priv && chmod 600 priv");

    auto read_public = sides.same_on_both(As::nobody, "cat pub");
    check_succeeded(read_public);
    CHECK(read_public.out == "public\n");
    check_failed_with(sides.same_on_both(As::nobody, "cat priv"), "Permission denied");
    check_succeeded(sides.same_on_both(As::nobody, "test -r pub && ! test -w pub"));
    check_succeeded(sides.same_on_both(As::nobody, "! test -r priv && ! test -w priv"));
    check_failed_with(sides.same_on_both(As::nobody, "echo more >> pub"), "Permission denied");
    CHECK(fbfs::test::read_file(sides.mount() / "pub") == "public\n");
}

TEST_CASE("Permissions: another user creates files only in directories whose modes let it",
          "[fuse]") {
    require_root();
    MountAndNative sides;
    sides.set_up("mkdir shut open && chmod 755 shut && chmod 777 open");

    check_failed_with(sides.same_on_both(As::nobody, "touch shut/new"), "Permission denied");
    check_failed_with(sides.same_on_both(As::nobody, "mkdir shut/sub"), "Permission denied");
    CHECK(fs::is_empty(sides.mount() / "shut"));

    auto created = sides.same_on_both(
        As::nobody, "touch open/new && mkdir open/sub && stat -c '%u:%g %a' open/new open/sub");
    check_succeeded(created);
    CHECK(created.out == "65534:65534 644\n65534:65534 755\n");
}

TEST_CASE("Permissions: another user cannot chmod or chown a root file, nor give its own away",
          "[fuse]") {
    require_root();
    MountAndNative sides;
    sides.set_up("echo x > rootfile && chmod 644 rootfile && mkdir open && chmod 777 open");

    check_failed_with(sides.same_on_both(As::nobody, "chmod 666 rootfile"),
                      "Operation not permitted");
    check_failed_with(sides.same_on_both(As::nobody, "chown 65534 rootfile"),
                      "Operation not permitted");
    check_failed_with(sides.same_on_both(As::nobody, "chgrp 65534 rootfile"),
                      "Operation not permitted");
    check_failed_with(sides.same_on_both(As::nobody, "touch open/mine && chown 0 open/mine"),
                      "Operation not permitted");
    auto unchanged = sides.same_on_both(As::root, "stat -c '%u:%g %a' rootfile open/mine");
    CHECK(unchanged.out == "0:0 644\n65534:65534 644\n");
}

// ---- sticky directories --------------------------------------------------------------------

TEST_CASE("Permissions: in a sticky directory another user removes its own files but not root's",
          "[fuse]") {
    require_root();
    MountAndNative sides;
    sides.set_up("mkdir sticky && chmod 1777 sticky && echo root > sticky/roots");

    check_succeeded(sides.same_on_both(As::nobody,
                                       "touch sticky/mine && rm sticky/mine && ! test -e "
                                       "sticky/mine"));
    check_failed_with(sides.same_on_both(As::nobody, "rm -f sticky/roots"),
                      "Operation not permitted");
    check_failed_with(sides.same_on_both(As::nobody, "mv sticky/roots sticky/moved"),
                      "Operation not permitted");
    // Replacing root's file by renaming over it is removing it too.
    check_failed_with(sides.same_on_both(As::nobody,
                                         "echo mine > sticky/mine && mv -f "
                                         "sticky/mine sticky/roots"),
                      "Operation not permitted");
    CHECK(fbfs::test::read_file(sides.mount() / "sticky" / "roots") == "root\n");

    check_succeeded(sides.same_on_both(
        As::root, "mv sticky/roots sticky/moved && rm sticky/moved sticky/mine && ls -A sticky"));
    CHECK(fs::is_empty(sides.mount() / "sticky"));
}

// ---- setuid and setgid bits ----------------------------------------------------------------

TEST_CASE("Permissions: another user's write or truncate clears setuid and setgid as ext4 does",
          "[fuse]") {
    require_root();
    MountAndNative sides;
    sides.set_up(
        "for f in appended truncated opentrunc rootwrite; do touch $f && chown 65534:65534 $f && "
        "chmod 6755 $f; done && touch nogroupexec && chown 65534:65534 nogroupexec && "
        "chmod 2745 nogroupexec");

    check_succeeded(sides.same_on_both(As::nobody, "echo more >> appended"));
    check_succeeded(sides.same_on_both(As::nobody, "truncate -s 0 truncated"));
    check_succeeded(sides.same_on_both(As::nobody, "echo more > opentrunc"));
    check_succeeded(sides.same_on_both(As::nobody, "echo more >> nogroupexec"));
    // Root keeps the bits (CAP_FSETID).
    check_succeeded(sides.same_on_both(As::root, "echo more >> rootwrite"));

    auto modes = sides.same_on_both(
        As::root, "stat -c '%n %a' appended truncated opentrunc nogroupexec rootwrite");
    // Setgid without group execute marks mandatory locking, not privilege: ext4 leaves it.
    CHECK(modes.out ==
          "appended 755\ntruncated 755\nopentrunc 755\nnogroupexec 2745\nrootwrite 6755\n");
}

TEST_CASE("Permissions: chown by root clears setuid and setgid as ext4 does", "[fuse]") {
    require_root();
    MountAndNative sides;
    sides.set_up(
        "touch u g ug nx && chmod 4755 u && chmod 2755 g && chmod 6755 ug && chmod 2745 nx");

    check_succeeded(sides.same_on_both(As::root, "chown 1:1 u g ug nx"));
    auto modes = sides.same_on_both(As::root, "stat -c '%n %a %u:%g' u g ug nx");
    CHECK(modes.out == "u 755 1:1\ng 755 1:1\nug 755 1:1\nnx 2745 1:1\n");
}

TEST_CASE("Permissions: a user's chmod g+s on a file of a group it is not in drops setgid",
          "[fuse]") {
    require_root();
    MountAndNative sides;
    sides.set_up(std::string("touch theirs && chown 65534:") + k_other_group + " theirs");

    // chmod succeeds, but the kernel silently leaves setgid out (ext4 does the same).
    check_succeeded(sides.same_on_both(As::nobody, "chmod 2755 theirs"));
    auto mode = sides.same_on_both(As::nobody, "stat -c '%a %g' theirs");
    CHECK(mode.out == std::string("755 ") + k_other_group + "\n");
}

// ---- ctime ---------------------------------------------------------------------------------

TEST_CASE("Permissions: chmod, chown, link, rename, write and truncate each advance ctime",
          "[fuse]") {
    require_root();
    MountAndNative sides;
    sides.set_up("echo start > f");

    struct Step {
        std::string what;
        std::string script;
        std::string before;  // the file's name before the step
        std::string after;   // and after it
        bool advances;
    };
    const std::vector<Step> steps{
        {"read", "cat f > /dev/null", "f", "f", false},
        {"chmod", "chmod 600 f", "f", "f", true},
        {"chown", "chown 1:1 f", "f", "f", true},
        {"link", "ln f g", "f", "f", true},
        {"rename", "mv f h", "f", "h", true},
        {"write", "echo more >> h", "h", "h", true},
        {"truncate", "truncate -s 2 h", "h", "h", true},
        {"unlink of another link", "rm g", "h", "h", true},
    };
    for (const auto& step : steps) {
        for (const auto& dir : {sides.native(), sides.mount()}) {
            INFO(step.what << " (" << step.script << ") in " << dir);
            auto before = ctime_ns(dir / step.before);
            // Far past the coarsest clock a kernel stamps ctime with.
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            auto result = sh_as_root(dir, step.script);
            INFO("stderr: " << result.err);
            REQUIRE(result.status == 0);
            auto after = ctime_ns(dir / step.after);
            INFO("ctime before " << before << " ns, after " << after << " ns");
            if (step.advances) {
                CHECK(after > before);
            } else {
                CHECK(after == before);
            }
        }
    }
}

// ---- setgid directories --------------------------------------------------------------------

TEST_CASE("Permissions: a setgid directory gives new files its group and subdirectories setgid",
          "[fuse]") {
    require_root();
    MountAndNative sides;
    sides.set_up(std::string("mkdir shared && chown 0:") + k_other_group +
                 " shared && chmod 2777 shared");

    check_succeeded(sides.same_on_both(As::root, "touch shared/rootfile && mkdir shared/rootdir"));
    // nobody is not in the group, and still gets it for what it makes.
    check_succeeded(sides.same_on_both(As::nobody,
                                       "touch shared/theirs && mkdir shared/theirdir && "
                                       "mkdir -p shared/theirdir/deeper/deepest"));
    auto made =
        sides.same_on_both(As::root,
                           "cd shared && stat -c '%n %a %u:%g' rootfile rootdir theirs theirdir "
                           "theirdir/deeper theirdir/deeper/deepest");
    const std::string g = k_other_group;
    CHECK(made.out == "rootfile 644 0:" + g + "\nrootdir 2755 0:" + g + "\ntheirs 644 65534:" + g +
                          "\ntheirdir 2755 65534:" + g + "\ntheirdir/deeper 2755 65534:" + g +
                          "\ntheirdir/deeper/deepest 2755 65534:" + g + "\n");
}
