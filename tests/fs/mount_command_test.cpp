// `fbfs mount` and `fbfs umount` as a user meets them: what a bad request prints, what a killed
// daemon leaves behind, several volumes of one store at once, mounting without root, a store
// that runs out of space, and mountpoints with spaces in their names.
//
// Some cases need root to set up (a throwaway user, a small tmpfs, /dev/fuse's mode); run as
// another user they say so and assert nothing.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "fs/process.h"
#include "store/meta/volume_lock.h"
#include "tests/support/mount.h"
#include "tests/support/nobody.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tree.h"
#include "tests/support/umask.h"

namespace fs = std::filesystem;
using fbfs::test::check_refused;
using fbfs::test::count_files;
using fbfs::test::daemon_pid;
using fbfs::test::force_unmount;
using fbfs::test::is_fuse_mounted;
using fbfs::test::Mount;
using fbfs::test::MountpointGuard;
using fbfs::test::mounts_at;
using fbfs::test::NobodyMachine;
using fbfs::test::read_file;
using fbfs::test::require_root;
using fbfs::test::run;
using fbfs::test::run_cli;
using fbfs::test::RunOptions;
using fbfs::test::RunResult;
using fbfs::test::shell_quoted;
using fbfs::test::sys_error;
using fbfs::test::TempDir;
using fbfs::test::write_file;

namespace {

constexpr uid_t k_nobody_uid = 65534;
constexpr gid_t k_nobody_gid = 65534;

// The name of an errno value ("ENOTCONN"), so a failed assertion reads as one.
std::string errno_name(int error) {
    if (error == 0) {
        return "ok";
    }
    const char* name = strerrorname_np(error);
    return name != nullptr ? name : "errno " + std::to_string(error);
}

// What stat(2) of `path` came to: "ok" or the errno's name.
std::string stat_outcome(const fs::path& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? "ok" : errno_name(errno);
}

// What stat(2) of `path` comes to for another user, in a child that drops to uid/gid.
std::string stat_outcome_as(uid_t uid, gid_t gid, const fs::path& path) {
    pid_t child = ::fork();
    if (child < 0) {
        throw sys_error("fork");
    }
    if (child == 0) {
        if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
            ::setresuid(uid, uid, uid) != 0) {
            ::_exit(255);
        }
        struct stat st {};
        ::_exit(::stat(path.c_str(), &st) == 0 ? 0 : errno);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 255) {
        return "could not become uid " + std::to_string(uid);
    }
    return errno_name(WEXITSTATUS(status));
}

std::string random_suffix() {
    std::random_device random;
    std::ostringstream out;
    out << std::hex << (random() & 0xffffffu);
    return out.str();
}

// Bytes that no two files in these tests share by accident.
std::string pattern(std::size_t size, unsigned seed) {
    std::mt19937 generator(seed);
    std::string out(size, '\0');
    for (auto& c : out) {
        c = static_cast<char>(generator() & 0xffu);
    }
    return out;
}

// Names of the entries of `dir` that start with `prefix`.
std::vector<std::string> entries_starting(const fs::path& dir, const std::string& prefix) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (auto name = entry.path().filename().string(); name.starts_with(prefix)) {
            names.push_back(name);
        }
    }
    return names;
}

RunResult fbfs_mount(const fs::path& store, const fs::path& mountpoint,
                     std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"mount", "--store", store.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(mountpoint.string());
    return run_cli(args);
}

RunResult fbfs_umount(const fs::path& mountpoint) {
    return run_cli({"umount", mountpoint.string()});
}

// /dev/fuse made usable by every user for one test, its mode restored afterwards. This machine
// has it 0600, while desktop distributions and hosted CI runners have it 0666: the mode users
// actually meet.
class DevFuseOpenToAll {
public:
    DevFuseOpenToAll() {
        struct stat st {};
        if (::stat("/dev/fuse", &st) != 0) {
            throw sys_error("stat /dev/fuse");
        }
        m_mode = st.st_mode & 07777;
        if (::chmod("/dev/fuse", 0666) != 0) {
            throw sys_error("chmod /dev/fuse");
        }
    }
    ~DevFuseOpenToAll() { ::chmod("/dev/fuse", m_mode); }
    DevFuseOpenToAll(const DevFuseOpenToAll&) = delete;
    DevFuseOpenToAll& operator=(const DevFuseOpenToAll&) = delete;

private:
    mode_t m_mode = 0600;
};

// A user made for one test (fbfs-test-<random>, with a home), deleted with its home afterwards.
class ThrowawayUser {
public:
    ThrowawayUser() : m_name("fbfs-test-" + random_suffix()) {
        auto made = run({"useradd", "--create-home", "--shell", "/bin/sh", m_name});
        if (made.status != 0) {
            throw std::runtime_error("useradd " + m_name + ": " + made.err);
        }
        auto id = run({"id", "-u", m_name});
        auto group = run({"id", "-g", m_name});
        auto home = run({"getent", "passwd", m_name});
        if (id.status != 0 || group.status != 0 || home.status != 0) {
            run({"userdel", "-r", m_name});
            throw std::runtime_error("cannot look up the new user " + m_name);
        }
        m_uid = static_cast<uid_t>(std::stoul(id.out));
        m_gid = static_cast<gid_t>(std::stoul(group.out));
        // getent: name:x:uid:gid:gecos:home:shell
        std::vector<std::string> fields;
        std::istringstream line(home.out);
        for (std::string field; std::getline(line, field, ':');) {
            fields.push_back(field);
        }
        m_home = fields.size() > 5 ? fields[5] : "/home/" + m_name;
    }
    ~ThrowawayUser() { run({"userdel", "-r", m_name}); }
    ThrowawayUser(const ThrowawayUser&) = delete;
    ThrowawayUser& operator=(const ThrowawayUser&) = delete;

    const std::string& name() const { return m_name; }
    uid_t uid() const { return m_uid; }
    gid_t gid() const { return m_gid; }
    const fs::path& home() const { return m_home; }

private:
    std::string m_name;
    uid_t m_uid = 0;
    gid_t m_gid = 0;
    fs::path m_home;
};

// Runs `script` with /bin/sh as `user` (uid, gid and the user's groups), in a clean environment
// with HOME set to `home` and $FBFS naming the binary under test.
RunResult sh_as(const std::string& user, uid_t uid, gid_t gid, const fs::path& home,
                const std::string& script) {
    return run({"setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(gid),
                "--init-groups", "env", "-i", "HOME=" + home.string(), "USER=" + user,
                "LOGNAME=" + user, "PATH=/usr/local/bin:/usr/bin:/bin",
                std::string("FBFS=") + FBFS_BINARY, "/bin/sh", "-c", script},
               RunOptions{.cwd = "/", .env = {}, .input = {}});
}

// A tmpfs of `size` mounted at `path` for one test, unmounted afterwards.
class SmallTmpfs {
public:
    SmallTmpfs(fs::path path, const std::string& size) : m_path(std::move(path)) {
        fs::create_directories(m_path);
        auto mounted = run({"mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", m_path});
        if (mounted.status != 0) {
            throw std::runtime_error("mount tmpfs on " + m_path.string() + ": " + mounted.err);
        }
    }
    ~SmallTmpfs() {
        if (!mounts_at(m_path).empty() && run({"umount", m_path}).status != 0) {
            run({"umount", "-l", m_path});
        }
    }
    SmallTmpfs(const SmallTmpfs&) = delete;
    SmallTmpfs& operator=(const SmallTmpfs&) = delete;

private:
    fs::path m_path;
};

std::string unlink_outcome(const fs::path& path) {
    return ::unlink(path.c_str()) == 0 ? "ok" : errno_name(errno);
}

// What writing `data` to a new file and closing it came to: "ok" or the first errno's name.
std::string write_and_close(const fs::path& path, std::string_view data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return errno_name(errno);
    }
    int error = 0;
    constexpr std::size_t k_chunk = 1 << 16;
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), std::min(data.size(), k_chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error = n < 0 ? errno : ENOSPC;
            break;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    if (::close(fd) != 0 && error == 0) {
        error = errno;
    }
    return errno_name(error);
}

}  // namespace

// ---- bad input -----------------------------------------------------------------------------

TEST_CASE("fbfs mount: a missing mountpoint is refused with a line saying to create it", "[fuse]") {
    TempDir tmp;
    auto mountpoint = tmp / "missing";
    auto result = fbfs_mount(tmp / "store", mountpoint);
    check_refused(result, {mountpoint.string(), "does not exist", "mkdir -p"});
    CHECK_FALSE(fs::exists(mountpoint));
    CHECK_FALSE(fs::exists(tmp / "store"));
}

TEST_CASE("fbfs mount: a regular file as mountpoint is refused with a line asking for a directory",
          "[fuse]") {
    TempDir tmp;
    auto mountpoint = tmp / "file";
    write_file(mountpoint, "not a directory\n");
    auto result = fbfs_mount(tmp / "store", mountpoint);
    check_refused(result, {mountpoint.string(), "not a directory", "empty directory"});
    CHECK(mounts_at(mountpoint).empty());
    CHECK(read_file(mountpoint) == "not a directory\n");
    CHECK_FALSE(fs::exists(tmp / "store"));
}

TEST_CASE("fbfs mount: a mountpoint that is not empty is refused and its files stay visible",
          "[fuse]") {
    TempDir tmp;
    auto mountpoint = tmp / "mnt";
    fs::create_directories(mountpoint);
    write_file(mountpoint / "precious.txt", "mine\n");
    auto result = fbfs_mount(tmp / "store", mountpoint);
    check_refused(result, {mountpoint.string(), "not empty", "empty directory"});
    CHECK_FALSE(is_fuse_mounted(mountpoint));
    CHECK(read_file(mountpoint / "precious.txt") == "mine\n");
    CHECK_FALSE(fs::exists(tmp / "store"));
}

TEST_CASE("fbfs mount: mounting over an fbfs mount is refused and the first mount keeps serving",
          "[fuse]") {
    TempDir tmp;
    Mount first(tmp / "store", tmp / "mnt");
    write_file(first / "kept.txt", "still here\n");
    auto result = fbfs_mount(tmp / "other-store", first.path());
    check_refused(result, {first.path().string(), "already an fbfs mount", "fbfs umount"});
    CHECK(mounts_at(first.path()).size() == 1);
    CHECK(read_file(first / "kept.txt") == "still here\n");
    CHECK_FALSE(fs::exists(tmp / "other-store"));
}

TEST_CASE("fbfs mount: a volume another daemon serves is refused with that daemon's pid",
          "[fuse]") {
    TempDir tmp;
    Mount first(tmp / "store", tmp / "mnt1", {"--volume", "ws"});
    auto pid = daemon_pid(first.path());
    REQUIRE(pid);
    auto second = tmp / "mnt2";
    fs::create_directories(second);
    MountpointGuard guard(second);
    auto result = fbfs_mount(tmp / "store", second, {"--volume", "ws"});
    check_refused(result, {"'ws'", "already served by pid " + std::to_string(*pid), "--volume"});
    CHECK(mounts_at(second).empty());
    CHECK(daemon_pid(first.path()) == pid);
}

TEST_CASE("fbfs mount: a volume name that is not a plain name is refused", "[fuse]") {
    auto name = GENERATE(as<std::string>{}, "a/b", "..");
    TempDir tmp;
    auto mountpoint = tmp / "mnt";
    fs::create_directories(mountpoint);
    MountpointGuard guard(mountpoint);
    auto result = fbfs_mount(tmp / "store", mountpoint, {"--volume", name});
    INFO("volume " << name);
    check_refused(result, {"invalid volume name '" + name + "'", "letters, digits"});
    CHECK(mounts_at(mountpoint).empty());
    CHECK_FALSE(fs::exists(tmp / "store"));
}

TEST_CASE("fbfs umount: a directory that is not a mount is refused with a clear line", "[fuse]") {
    TempDir tmp;
    auto dir = tmp / "plain";
    fs::create_directories(dir);
    write_file(dir / "file.txt", "untouched\n");
    auto result = fbfs_umount(dir);
    check_refused(result, {dir.string(), "not an fbfs mount"});
    CHECK(read_file(dir / "file.txt") == "untouched\n");
}

TEST_CASE("fbfs mount: a store that does not exist yet is created with its pool and metadata",
          "[fuse]") {
    TempDir tmp;
    auto store = tmp / "deep" / "er" / "store";
    auto mountpoint = tmp / "mnt";
    fs::create_directories(mountpoint);
    MountpointGuard guard(mountpoint);
    auto result = fbfs_mount(store, mountpoint);
    INFO("stderr: " << result.err);
    REQUIRE(result.status == 0);
    CHECK(is_fuse_mounted(mountpoint));
    CHECK(fs::is_directory(store / "objects"));
    CHECK(fs::is_directory(store / "meta"));
    CHECK(fbfs_umount(mountpoint).status == 0);
    CHECK(run_cli({"verify", "--store", store.string()}).status == 0);
}

TEST_CASE("fbfs mount: a store the user cannot write is refused with a line naming it", "[fuse]") {
    require_root();
    DevFuseOpenToAll dev_fuse;
    TempDir tmp;
    fs::permissions(tmp.path(), fs::perms::owner_all | fs::perms::group_read |
                                    fs::perms::group_exec | fs::perms::others_read |
                                    fs::perms::others_exec);
    auto store = tmp / "root-store";
    fs::create_directory(store);
    fs::permissions(store, fs::perms::owner_all);  // root's, 0700
    auto mountpoint = tmp / "mnt";
    fs::create_directory(mountpoint);
    REQUIRE(::chown(mountpoint.c_str(), k_nobody_uid, k_nobody_gid) == 0);
    MountpointGuard guard(mountpoint);

    auto result = sh_as(
        "nobody", k_nobody_uid, k_nobody_gid, tmp.path(),
        "exec \"$FBFS\" mount --store '" + store.string() + "' '" + mountpoint.string() + "'");
    check_refused(result, {store.string()});
    // The fix: point --store elsewhere or fix its permissions.
    bool names_a_fix = result.err.find("--store") != std::string::npos ||
                       result.err.find("permission") != std::string::npos;
    CHECK(names_a_fix);
    CHECK(mounts_at(mountpoint).empty());
    CHECK(fs::is_empty(store));
}

// ---- a killed daemon -----------------------------------------------------------------------

TEST_CASE("fbfs umount recovers a killed daemon's mount and every closed file survives it",
          "[fuse]") {
    TempDir tmp;
    auto store = tmp / "store";
    auto mountpoint = tmp / "mnt";
    fs::create_directories(mountpoint);
    MountpointGuard guard(mountpoint);
    REQUIRE(fbfs_mount(store, mountpoint).status == 0);

    std::vector<std::pair<std::string, std::string>> closed_files{
        {"small.txt", "hello\n"},
        {"empty", ""},
        {"big.bin", pattern(3 << 20, 1)},
        {"dir/sub/nested.c", "int main(void) { return 0; }\n"},
        {"odd-size.bin", pattern(65537, 2)},
    };
    fs::create_directories(mountpoint / "dir" / "sub");
    for (const auto& [name, content] : closed_files) {
        write_file(mountpoint / name, content);
    }
    // A file still open, its bytes pushed to the daemon (into a staging file) but not committed.
    int open_fd = ::open((mountpoint / "open.bin").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(open_fd >= 0);
    auto unsaved = pattern(200000, 3);
    REQUIRE(::write(open_fd, unsaved.data(), unsaved.size()) ==
            static_cast<ssize_t>(unsaved.size()));
    REQUIRE(::sync_file_range(open_fd, 0, 0,
                              SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                  SYNC_FILE_RANGE_WAIT_AFTER) == 0);
    CHECK(entries_starting(store / "tmp", "staging-").size() == 1);

    auto pid = daemon_pid(mountpoint);
    REQUIRE(pid);
    REQUIRE(::kill(*pid, SIGKILL) == 0);
    REQUIRE(fbfs::wait_until_exited(*pid, std::chrono::seconds(10)));
    CHECK(stat_outcome(mountpoint) == "ENOTCONN");

    auto recovered = fbfs_umount(mountpoint);
    INFO("umount stderr: " << recovered.err);
    CHECK(recovered.status == 0);
    CHECK(mounts_at(mountpoint).empty());
    ::close(open_fd);  // its connection is gone: whatever close says, nothing is left to save

    auto remounted = fbfs_mount(store, mountpoint);
    INFO("mount stderr: " << remounted.err);
    REQUIRE(remounted.status == 0);
    for (const auto& [name, content] : closed_files) {
        INFO("file " << name);
        CHECK(read_file(mountpoint / name) == content);
    }
    CHECK(entries_starting(store / "tmp", "staging-").empty());
    REQUIRE(fbfs_umount(mountpoint).status == 0);
    auto verified = run_cli({"verify", "--store", store.string()});
    INFO("verify: " << verified.out << verified.err);
    CHECK(verified.status == 0);
}

// ---- several volumes -----------------------------------------------------------------------

TEST_CASE("Two volumes of one store mount at once, share objects and keep separate trees",
          "[fuse]") {
    TempDir tmp;
    auto store = tmp / "store";
    auto ws = tmp / "ws";
    auto tc = tmp / "tc";
    fs::create_directories(ws);
    fs::create_directories(tc);
    MountpointGuard ws_guard(ws);
    MountpointGuard tc_guard(tc);
    REQUIRE(fbfs_mount(store, ws, {"--volume", "ws"}).status == 0);
    REQUIRE(fbfs_mount(store, tc, {"--volume", "tc"}).status == 0);
    REQUIRE(daemon_pid(ws) != daemon_pid(tc));

    auto shared = pattern(100000, 7);
    write_file(ws / "shared.bin", shared);
    write_file(tc / "shared.bin", shared);
    fs::create_directories(ws / "build");
    write_file(ws / "build" / "copy.bin", shared);
    write_file(ws / "name.txt", "workspace\n");
    write_file(tc / "name.txt", "toolchain\n");
    // Three distinct contents: one object each, however many files and volumes hold them.
    CHECK(count_files(store / "objects") == 3);

    REQUIRE(fbfs_umount(ws).status == 0);
    REQUIRE(fbfs_umount(tc).status == 0);
    REQUIRE(fbfs_mount(store, ws, {"--volume", "ws"}).status == 0);
    REQUIRE(fbfs_mount(store, tc, {"--volume", "tc"}).status == 0);

    CHECK(read_file(ws / "shared.bin") == shared);
    CHECK(read_file(ws / "build" / "copy.bin") == shared);
    CHECK(read_file(ws / "name.txt") == "workspace\n");
    CHECK(read_file(tc / "shared.bin") == shared);
    CHECK(read_file(tc / "name.txt") == "toolchain\n");
    CHECK_FALSE(fs::exists(tc / "build"));
    // A change in one volume does not show in the other.
    write_file(tc / "name.txt", "changed\n");
    CHECK(read_file(ws / "name.txt") == "workspace\n");
    REQUIRE(fbfs_umount(ws).status == 0);
    REQUIRE(fbfs_umount(tc).status == 0);
    CHECK(run_cli({"verify", "--store", store.string()}).status == 0);
}

// ---- without root --------------------------------------------------------------------------

TEST_CASE("An ordinary user mounts with fusermount3, builds inside, and the mount is theirs alone",
          "[fuse]") {
    require_root();
    DevFuseOpenToAll dev_fuse;
    ThrowawayUser user;
    // The home's mode decides nothing below: nobody may walk to the mountpoint.
    fs::permissions(user.home(), fs::perms::owner_all | fs::perms::group_read |
                                     fs::perms::group_exec | fs::perms::others_read |
                                     fs::perms::others_exec);
    auto mountpoint = user.home() / "mnt";
    MountpointGuard guard(mountpoint);

    auto mounted = sh_as(user.name(), user.uid(), user.gid(), user.home(),
                         "mkdir -p \"$HOME/mnt\" && \"$FBFS\" mount --store \"$HOME/store\" "
                         "\"$HOME/mnt\"");
    INFO("mount: " << mounted.err << mounted.out);
    REQUIRE(mounted.status == 0);
    auto entries = mounts_at(mountpoint);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].fstype == "fuse.fbfs");
    CHECK_THAT(entries[0].super_options, Catch::Contains("user_id=" + std::to_string(user.uid())));

    auto built = sh_as(user.name(), user.uid(), user.gid(), user.home(), R"(set -e
cd "$HOME/mnt"
printf '#include <stdio.h>\nvoid greet(void) { puts("hello from fbfs"); }\n' > greet.c
printf 'void greet(void);\nint main(void) { greet(); return 0; }\n' > main.c
printf 'hello: main.o greet.o\n\tcc -o $@ main.o greet.o\n%%.o: %%.c\n\tcc -c -o $@ $<\n' > Makefile
make -s
./hello
stat -c '%u:%g' greet.o main.o hello
make -q
)");
    INFO("build: " << built.err << built.out);
    REQUIRE(built.status == 0);
    auto owner = std::to_string(user.uid()) + ":" + std::to_string(user.gid());
    CHECK(built.out == "hello from fbfs\n" + owner + "\n" + owner + "\n" + owner + "\n");

    // Without --allow-other the mount is private: another user is turned away by FUSE itself
    // (the same user can still reach the home directory around it).
    CHECK(stat_outcome_as(k_nobody_uid, k_nobody_gid, user.home()) == "ok");
    auto refused = stat_outcome_as(k_nobody_uid, k_nobody_gid, mountpoint);
    bool denied = refused == "EACCES" || refused == "EPERM";
    INFO("stat as nobody: " << refused);
    CHECK(denied);

    auto unmounted = sh_as(user.name(), user.uid(), user.gid(), user.home(),
                           "exec \"$FBFS\" umount \"$HOME/mnt\"");
    INFO("umount: " << unmounted.err);
    CHECK(unmounted.status == 0);
    CHECK(mounts_at(mountpoint).empty());
    std::vector<std::string> not_theirs;
    for (const auto& entry : fs::recursive_directory_iterator(user.home() / "store")) {
        struct stat st {};
        if (::lstat(entry.path().c_str(), &st) == 0 && st.st_uid != user.uid()) {
            not_theirs.push_back(entry.path().string());
        }
    }
    CHECK(not_theirs.empty());
    CHECK(count_files(user.home() / "store" / "objects") >= 4);  // 2 sources, 2 .o, a program
}

// ---- a machine short of processes or of /dev/null -----------------------------------------

TEST_CASE(
    "fbfs umount: a fusermount3 that cannot be started is named with the process limit, "
    "and the mount stays",
    "[fuse]") {
    NobodyMachine machine;
    // The daemon's threads count against nobody's limit of one process: fbfs umount cannot fork.
    auto result = machine.as_nobody({machine.dev_fuse(0666)}, R"(
"$FBFS" mount "$M" || exit 91
echo kept > "$M/file"
prlimit --nproc=1 "$FBFS" umount "$M" 2> "$HOME/umount.err"
echo $? > "$HOME/umount.status"
cat "$M/file"
exec "$FBFS" umount "$M"
)");
    INFO("stderr: " << result.err);
    REQUIRE(result.status == 0);
    CHECK(result.out == "kept\n");  // still mounted and served after the umount that failed
    RunResult refused{std::stoi(read_file(machine / "home" / "umount.status")), "",
                      read_file(machine / "home" / "umount.err")};
    check_refused(refused, {"could not unmount " + (machine / "mnt").string(),
                            "cannot start /usr/bin/fusermount3: fork", "ulimit -u"});
}

TEST_CASE("fbfs mount: a daemon that cannot fork is refused with a line naming the process limit",
          "[fuse]") {
    NobodyMachine machine;
    // A uid of its own, so that nothing but this test counts against its limit of two processes:
    // fbfs mount and the child it forks, which then cannot fork the daemon. (No passwd entry is
    // needed: a mount stops before it would run fusermount3.)
    auto uid = static_cast<uid_t>(2'000'000'000 + ::getpid() % 1'000'000);
    auto own = machine / "own";
    fs::create_directories(own / "mnt");
    for (const auto& dir : {own, own / "mnt"}) {
        REQUIRE(::chown(dir.c_str(), uid, uid) == 0);
    }
    auto result =
        machine.as_user(uid, {machine.dev_fuse(0666)},
                        "exec prlimit --nproc=2 \"$FBFS\" mount --store " +
                            shell_quoted(own / "store") + " " + shell_quoted(own / "mnt"));
    check_refused(result, {"cannot start the fbfs daemon: fork", "ulimit -u"});
    CHECK_FALSE(fbfs::VolumeLock::holder(own / "store", "default"));
}

TEST_CASE("fbfs mount: a /dev/null the daemon cannot open is refused with a line naming it",
          "[fuse]") {
    NobodyMachine machine;
    // What a broken container may have: a /dev/null that is not the null device (ENXIO).
    auto not_null = machine / "not-null";
    REQUIRE(::mknod(not_null.c_str(), S_IFSOCK | 0666, 0) == 0);
    REQUIRE(::chmod(not_null.c_str(), 0666) == 0);
    // Its output goes to a file: a daemon holding a pipe of the test's would hang it.
    auto result = machine.as_nobody({machine.dev_fuse(0666), {not_null, "/dev/null"}}, R"(
"$FBFS" mount "$M" > "$HOME/mount.out" 2>&1
echo $? > "$HOME/mount.status"
if grep -q ' fuse.fbfs ' /proc/self/mounts; then
    touch "$HOME/was-mounted"
    "$FBFS" umount "$M"
fi
)");
    INFO("stderr: " << result.err);
    CHECK_FALSE(fs::exists(machine / "home" / "was-mounted"));
    RunResult refused{std::stoi(read_file(machine / "home" / "mount.status")), "",
                      read_file(machine / "home" / "mount.out")};
    check_refused(refused,
                  {"the fbfs daemon cannot open /dev/null", "mknod -m 0666 /dev/null c 1 3"});
}

// ---- disk full -----------------------------------------------------------------------------

TEST_CASE("A store that runs out of space fails the write with ENOSPC and recovers after a delete",
          "[fuse]") {
    require_root();
    TempDir tmp;
    SmallTmpfs small(tmp / "small", "4m");
    auto store = tmp / "small" / "store";
    auto mountpoint = tmp / "mnt";
    fs::create_directories(mountpoint);
    MountpointGuard guard(mountpoint);
    auto mounted = fbfs_mount(store, mountpoint);
    INFO("mount: " << mounted.err);
    REQUIRE(mounted.status == 0);

    CHECK(write_and_close(mountpoint / "too-big.bin", pattern(8 << 20, 9)) == "ENOSPC");
    CHECK(unlink_outcome(mountpoint / "too-big.bin") == "ok");
    CHECK(write_and_close(mountpoint / "small.txt", "fits\n") == "ok");
    CHECK(read_file(mountpoint / "small.txt") == "fits\n");

    auto unmounted = fbfs_umount(mountpoint);
    INFO("umount: " << unmounted.err);
    REQUIRE(unmounted.status == 0);
    auto verified = run_cli({"verify", "--store", store.string()});
    INFO("verify: " << verified.out << verified.err);
    CHECK(verified.status == 0);
    REQUIRE(fbfs_mount(store, mountpoint).status == 0);
    CHECK(read_file(mountpoint / "small.txt") == "fits\n");
    CHECK_FALSE(fs::exists(mountpoint / "too-big.bin"));
    CHECK(entries_starting(store / "tmp", "staging-").empty());
    REQUIRE(fbfs_umount(mountpoint).status == 0);
}

// ---- awkward paths -------------------------------------------------------------------------

TEST_CASE("fbfs mount and umount work on a path with a space in it", "[fuse]") {
    TempDir tmp;
    auto store = tmp / "my store";
    auto mountpoint = tmp / "my mount point";
    fs::create_directories(mountpoint);
    MountpointGuard guard(mountpoint);
    auto mounted = fbfs_mount(store, mountpoint);
    INFO("mount: " << mounted.err);
    REQUIRE(mounted.status == 0);
    CHECK(is_fuse_mounted(mountpoint));
    auto pid = daemon_pid(mountpoint);
    REQUIRE(pid);
    write_file(mountpoint / "a file.txt", "spaced out\n");

    auto unmounted = fbfs_umount(mountpoint);
    INFO("umount: " << unmounted.err);
    CHECK(unmounted.status == 0);
    CHECK(mounts_at(mountpoint).empty());
    CHECK(fbfs::wait_until_exited(*pid, std::chrono::milliseconds(0)));  // umount returns once the daemon has saved everything and exited

    REQUIRE(fbfs_mount(store, mountpoint).status == 0);
    CHECK(read_file(mountpoint / "a file.txt") == "spaced out\n");
    CHECK(fbfs_umount(mountpoint).status == 0);
}
