#include "tests/support/nobody.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/support/posix.h"

namespace fbfs::test {

RunResult run_fbfs_as_nobody(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                  FBFS_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
}

namespace fs = std::filesystem;

std::string shell_quoted(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

NobodyMachine::NobodyMachine() {
    require_root();
    fs::permissions(m_tmp.path(), fs::perms(0755));
    for (mode_t mode : {mode_t{0666}, mode_t{0600}}) {
        auto path = dev_fuse(mode).first;
        REQUIRE(::mknod(path.c_str(), S_IFCHR | mode, ::makedev(10, 229)) == 0);
        REQUIRE(::chmod(path.c_str(), mode) == 0);
    }
    for (const char* dir : {"home", "mnt", "bin"}) {
        fs::create_directory(m_tmp / dir);
        REQUIRE(::chown((m_tmp / dir).c_str(), k_nobody_uid, k_nobody_uid) == 0);
    }
}

std::pair<fs::path, fs::path> NobodyMachine::dev_fuse(mode_t mode) const {
    return {m_tmp / (mode == 0666 ? "fuse-0666" : "fuse-0600"), "/dev/fuse"};
}

RunResult NobodyMachine::as_nobody(const std::vector<std::pair<fs::path, fs::path>>& binds,
                                   const std::string& script, const std::string& path) {
    return as_user(k_nobody_uid, binds, script, path);
}

RunResult NobodyMachine::as_user(uid_t uid, const std::vector<std::pair<fs::path, fs::path>>& binds,
                                 const std::string& script, const std::string& path) {
    std::string outer =
        "set -u\n" +
        shell_quoted(std::string(FBFS_SOURCE_DIR) + "/tests/support/let-go-of-fuse-mounts") + "\n";
    for (const auto& [from, to] : binds) {
        outer += "mount --bind " + shell_quoted(from) + " " + shell_quoted(to) + " || exit 90\n";
    }
    auto id = std::to_string(uid);
    outer += "setpriv --reuid=" + id + " --regid=" + id +
             " --clear-groups env -i LC_ALL=C PATH=" + shell_quoted(path) +
             " HOME=" + shell_quoted(m_tmp / "home") + " FBFS=" + shell_quoted(FBFS_BINARY) +
             " M=" + shell_quoted(m_tmp / "mnt") + " /bin/sh -c " + shell_quoted(script) +
             "\nrc=$?\n"
             "grep ' fuse.fbfs ' /proc/self/mounts | while read -r _ m _; do "
             "echo \"left mounted: $m\" >&2; umount -l \"$m\"; done\n"
             "exit $rc\n";
    auto result = run({"unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", outer},
                      RunOptions{.cwd = "/", .env = {}, .input = {}});
    INFO("stderr: " << result.err << "\nstdout: " << result.out);
    REQUIRE(result.status != 90);
    CHECK(result.err.find("left mounted") == std::string::npos);
    return result;
}

}  // namespace fbfs::test
