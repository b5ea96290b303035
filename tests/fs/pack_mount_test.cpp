// `fbfs pack` and `fbfs unpack` around real mounts, as a CI cache uses them: a tree made through
// a mount comes back exactly after pack, a wiped store and unpack (bytes, modes, owners, times to
// the nanosecond, hard links, symlinks, fifos, extended attributes); a pack made by runner A at one
// path and $HOME lets runner B at another path and $HOME build nothing, an overlay's deletions and
// copy-ups included; a mounted volume is never packed or overwritten, and a volume being packed
// cannot be mounted; a volume whose daemon was killed packs, and is unpacked over, without
// leftovers; and unpacking replaces exactly the volumes a pack holds.
//
// Every compiler run goes through a logging launcher that writes outside the mount, so the tests
// count what was compiled, not what make claimed. The tools are installed by scripts/deps; a
// missing one fails the test rather than skipping it.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fs/process.h"
#include "store/base/object_id.h"
#include "store/base/unique_fd.h"
#include "store/meta/volume_lock.h"
#include "tests/support/make_project.h"
#include "tests/support/compiler_log.h"
#include "tests/support/mount.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tree.h"
#include "tests/support/umask.h"

namespace fs = std::filesystem;
using fbfs::test::CompilerLog;
using fbfs::test::make_in;
using fbfs::ObjectId;
using fbfs::test::at;
using fbfs::test::check_refused;
using fbfs::test::check_same_tree;
using fbfs::test::command_line;
using fbfs::test::count_files;
using fbfs::test::daemon_pid;
using fbfs::test::installed;
using fbfs::test::lstat_of;
using fbfs::test::Mount;
using fbfs::test::mounts_at;
using fbfs::test::object_path;
using fbfs::test::outcome;
using fbfs::test::put_file;
using fbfs::test::random_bytes;
using fbfs::test::read_file;
using fbfs::test::read_path;
using fbfs::test::readlink_of;
using fbfs::test::require_root;
using fbfs::test::RunOptions;
using fbfs::test::RunResult;
using fbfs::test::set_times;
using fbfs::test::Snapshot;
using fbfs::test::snapshot;
using fbfs::test::stat_outcome;
using fbfs::test::tail;
using fbfs::test::TempDir;
using fbfs::test::time_text;
using fbfs::test::write_file;

namespace {

// A command that stops making progress (a daemon that no longer answers, a pack that never
// ends) fails the test instead of hanging the whole run.
constexpr const char* k_fbfs_timeout = "300";

// `fbfs ARGS` under a time limit, in the test's environment.
RunResult fbfs_cli(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"timeout", "-k", "10", k_fbfs_timeout, FBFS_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return fbfs::test::run(argv);
}

// `fbfs ARGS` as a runner whose home is `home` and that sets neither $FBFS_STORE nor
// $XDG_CACHE_HOME: its default store is `home`/.cache/fbfs.
RunResult fbfs_at_home(const fs::path& home, const std::vector<std::string>& args) {
    std::vector<std::string> argv{"env", "-u", "FBFS_STORE", "-u", "XDG_CACHE_HOME"};
    argv.push_back("HOME=" + home.string());
    argv.insert(argv.end(), {"timeout", "-k", "10", k_fbfs_timeout, FBFS_BINARY});
    argv.insert(argv.end(), args.begin(), args.end());
    return fbfs::test::run(argv);
}

// Requires that an fbfs command exited 0; the failure message shows it and what it printed.
void require_ok(const RunResult& result, const std::string& what) {
    INFO("`" << what << "` exited with status " << result.status << "\nstderr: " << result.err
             << "\nstdout: " << tail(result.out));
    REQUIRE(result.status == 0);
}

RunResult pack(const fs::path& store, const fs::path& output, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"pack", "--store", store.string()};
    args.insert(args.end(), more.begin(), more.end());
    args.push_back("-o");
    args.push_back(output.string());
    return fbfs_cli(args);
}

RunResult unpack(const fs::path& store, const fs::path& input) {
    return fbfs_cli({"unpack", "--store", store.string(), input.string()});
}

// Every extended attribute of each path under `root` (the root itself as "."), as the mount
// lists and gets them: "path name" -> value.
std::map<std::string, std::string> xattrs_under(const fs::path& root) {
    std::map<std::string, std::string> out;
    std::vector<fs::path> paths{root};
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        paths.push_back(entry.path());
    }
    for (const auto& path : paths) {
        std::string relative = path == root ? "." : path.lexically_relative(root).string();
        std::string names(65536, '\0');
        ssize_t listed = ::llistxattr(path.c_str(), names.data(), names.size());
        REQUIRE(listed >= 0);
        names.resize(static_cast<std::size_t>(listed));
        for (std::size_t at = 0; at < names.size(); at = names.find('\0', at) + 1) {
            std::string name = names.substr(at, names.find('\0', at) - at);
            std::string value(65536, '\0');
            ssize_t got = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
            REQUIRE(got >= 0);
            value.resize(static_cast<std::size_t>(got));
            out[relative + " " + name] = value;
        }
    }
    return out;
}

// The number written just before `word` in a summary line ("12 objects"), if there is one.
std::optional<long> number_before(const std::string& text, const std::string& word) {
    std::smatch match;
    if (std::regex_search(text, match, std::regex("([0-9]+) " + word))) {
        return std::stol(match[1].str());
    }
    return std::nullopt;
}

// Names in `dir` (empty if it does not exist), for "nothing was left behind" checks.
std::set<std::string> entries_of(const fs::path& dir) {
    std::set<std::string> names;
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        names.insert(it->path().filename().string());
    }
    return names;
}

// Path (relative to `root`, "." for itself) to atime, read with lstat without opening anything.
std::map<std::string, std::string> atimes(const fs::path& root) {
    std::map<std::string, std::string> out{{".", time_text(lstat_of(root).st_atim)}};
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        out[entry.path().lexically_relative(root).string()] =
            time_text(lstat_of(entry.path()).st_atim);
    }
    return out;
}

// The sets of paths under `root` that are one inode (hard links), as sorted relative paths.
std::set<std::set<std::string>> link_groups(const fs::path& root) {
    std::map<ino_t, std::set<std::string>> by_inode;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        struct stat st = lstat_of(entry.path());
        if (!S_ISDIR(st.st_mode)) {
            by_inode[st.st_ino].insert(entry.path().lexically_relative(root).string());
        }
    }
    std::set<std::set<std::string>> groups;
    for (const auto& [ino, paths] : by_inode) {
        if (paths.size() > 1) {
            groups.insert(paths);
        }
    }
    return groups;
}

// `fbfs pack --store STORE -o -` in the background, writing into a pipe that nobody reads until
// drain(): it stalls in the middle of the pack, holding its volume locks. The destructor closes
// the pipe (the pack fails on EPIPE) and waits for it, so it never outlives the test.
class StalledPack {
public:
    StalledPack(const fs::path& store, const fs::path& err_file) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            throw fbfs::test::sys_error("pipe2");
        }
        m_read = fbfs::UniqueFd(fds[0]);
        fbfs::UniqueFd write_end(fds[1]);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
        posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_file.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
        std::vector<std::string> args{FBFS_BINARY, "pack", "--store", store.string(), "-o", "-"};
        std::vector<char*> argv;
        for (auto& arg : args) {
            argv.push_back(arg.data());
        }
        argv.push_back(nullptr);
        int rc = ::posix_spawn(&m_pid, FBFS_BINARY, &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        if (rc != 0) {
            m_pid = -1;
            throw std::system_error(rc, std::generic_category(), "spawn fbfs pack");
        }
    }
    ~StalledPack() {
        m_read.reset();
        wait();
    }
    StalledPack(const StalledPack&) = delete;
    StalledPack& operator=(const StalledPack&) = delete;

    pid_t pid() const { return m_pid; }

    // Reads the pack to its end; returns it, and fbfs pack's exit status in `status`.
    std::string drain(int& status) {
        std::string bytes;
        char buffer[1 << 16];
        for (;;) {
            ssize_t n = ::read(m_read.get(), buffer, sizeof buffer);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;
            }
            bytes.append(buffer, static_cast<std::size_t>(n));
        }
        status = wait();
        return bytes;
    }

private:
    int wait() {
        int status = 0;
        if (m_pid > 0) {
            while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
            }
            m_pid = -1;
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

    fbfs::UniqueFd m_read;
    pid_t m_pid = -1;
};

// ---- a tree with everything a volume can hold -----------------------------------------------

const std::string k_long_name = std::string(251, 'n') + ".txt";  // 255 bytes, NAME_MAX

// Fills the mount `m` with directories (one empty, one 0700, one deep), regular files of sizes
// 0 to over 64 MiB, three files with the same bytes, a hard link pair, symlinks (dangling, out
// of the tree, absolute), a fifo, modes 0600/0640/0755/04755, another owner, and then sets an
// explicit atime and mtime, with nanoseconds, on every path (children before their directory,
// so creating entries does not move a directory's mtime afterwards).
void make_rich_tree(const fs::path& m) {
    for (const char* dir : {"src/nested/deeper/deepest", "bin", "dup", "empty", "private", "links",
                            "pipes", "odd names"}) {
        fs::create_directories(m / dir);
    }
    fs::permissions(m / "private", fs::perms::owner_all);
    put_file(m / "src/empty.c", "");
    put_file(m / "src/one", random_bytes(1, 1));
    put_file(m / "src/page", random_bytes(2, 4097));
    put_file(m / "src/nested/mid.bin", random_bytes(3, 200'003));
    put_file(m / "bin/big.bin", random_bytes(4, (std::size_t{1} << 20) + 17), 0755);
    put_file(m / "bin/huge.bin", random_bytes(5, (std::size_t{3} << 20) + 5));
    // More than one 64 MiB frame of the pack's object stream.
    put_file(m / "bin/over-a-frame.bin", random_bytes(10, (std::size_t{64} << 20) + 4097));
    const std::string same = random_bytes(6, 300'000);
    put_file(m / "dup/a.bin", same);
    put_file(m / "dup/b.bin", same);
    put_file(m / "src/nested/deeper/deepest/c.bin", same);
    put_file(m / "private/secret", random_bytes(7, 1000), 0600);
    put_file(m / "bin/setuid-tool", random_bytes(8, 5000));
    REQUIRE(outcome(::chmod((m / "bin/setuid-tool").c_str(), 04755)) == "ok");
    put_file(m / "odd names/owned by 1234", "someone else's\n");
    REQUIRE(outcome(::chown((m / "odd names/owned by 1234").c_str(), 1234, 5678)) == "ok");
    REQUIRE(outcome(::chmod((m / "odd names/owned by 1234").c_str(), 0640)) == "ok");
    put_file(m / "odd names" / "ünïcödé name.txt", "utf-8\n");
    put_file(m / "odd names" / k_long_name, "long\n");
    put_file(m / "src/hard-a", random_bytes(9, 70'000));
    REQUIRE(outcome(::link((m / "src/hard-a").c_str(), (m / "bin/hard-b").c_str())) == "ok");
    REQUIRE(outcome(::symlink("no/such/target", (m / "links/dangling").c_str())) == "ok");
    REQUIRE(outcome(::symlink("../../etc/passwd", (m / "links/escape").c_str())) == "ok");
    REQUIRE(outcome(::symlink("../bin/big.bin", (m / "links/to-big").c_str())) == "ok");
    REQUIRE(outcome(::symlink("/usr/bin/env", (m / "links/absolute").c_str())) == "ok");
    REQUIRE(outcome(::mkfifo((m / "pipes/fifo").c_str(), 0640)) == "ok");

    // Deepest paths first, the root last.
    std::vector<fs::path> paths;
    for (const auto& entry : fs::recursive_directory_iterator(m)) {
        paths.push_back(entry.path());
    }
    std::sort(paths.begin(), paths.end(), [](const fs::path& a, const fs::path& b) {
        auto depth = [](const fs::path& p) { return std::distance(p.begin(), p.end()); };
        return depth(a) != depth(b) ? depth(a) > depth(b) : a < b;
    });
    paths.push_back(m);
    long i = 0;
    for (const auto& path : paths) {
        set_times(path, at(1'500'000'000 + i * 1001, 100'000'007 + i * 7),
                  at(1'600'000'000 + i * 997, 999'999'999 - i * 13), AT_SYMLINK_NOFOLLOW);
        ++i;
    }
    // Times a 32-bit or unsigned encoding would lose: before 1970 and after 2038.
    set_times(m / "src/one", at(-31'536'000, 5), at(-86'400, 999'999'999), AT_SYMLINK_NOFOLLOW);
    set_times(m / "src/page", at(4'102'444'800, 1), at(4'102'444'801, 123'456'789),
              AT_SYMLINK_NOFOLLOW);
}

// ---- a make project and the runners that build it -------------------------------------------

constexpr int k_unit_count = 8;

std::string unit_name(int i) {
    return "u" + std::to_string(i);
}

// k_unit_count sources in src/ (each including a header from include/, the odd ones a shared
// header too) and src/main.c; a Makefile with -MMD -MP depfiles that builds into build/.
// Returns the sources, relative to `root`.
std::set<std::string> write_make_project(const fs::path& root) {
    fs::create_directories(root / "src");
    fs::create_directories(root / "include");
    write_file(root / "include/shared.h",
               "#ifndef SHARED_H\n#define SHARED_H\n#define SHARED(x) ((x) ^ 0x5a)\n#endif\n");
    std::set<std::string> sources;
    std::string declarations, calls;
    for (int i = 0; i < k_unit_count; ++i) {
        auto unit = unit_name(i);
        write_file(root / "include" / (unit + ".h"),
                   "#define K_" + unit + " " + std::to_string(i * 3 + 1) + "\n");
        std::string text = "#include \"" + unit + ".h\"\n";
        std::string body = "x + K_" + unit;
        if (i % 2 == 1) {
            text += "#include \"shared.h\"\n";
            body = "SHARED(" + body + ")";
        }
        write_file(root / "src" / (unit + ".c"),
                   text + "int " + unit + "(int x) { return " + body + "; }\n");
        sources.insert("src/" + unit + ".c");
        declarations += "int " + unit + "(int);\n";
        calls += "    sum += " + unit + "(sum & 0xff);\n";
    }
    write_file(root / "src/main.c", "#include <stdio.h>\n" + declarations +
                                        "int main(void) {\n    int sum = 1;\n" + calls +
                                        "    printf(\"%d\\n\", sum);\n    return 0;\n}\n");
    sources.insert("src/main.c");
    write_file(root / "Makefile", std::string(fbfs::test::k_depfile_makefile));
    return sources;
}

// Runs make in `dir` and requires that it compiled exactly `expected` and linked once.
void require_make_rebuilds(const fs::path& dir, const CompilerLog& cc,
                           const std::set<std::string>& expected, const std::string& when) {
    INFO(when);
    auto build = make_in(dir, cc, {"-j2"});
    INFO("make:\n" << tail(build.out) << tail(build.err));
    REQUIRE(build.status == 0);
    auto runs = cc.take();
    INFO("compiler runs:\n" << runs.log);
    CHECK(runs.compiled == std::multiset<std::string>(expected.begin(), expected.end()));
    CHECK(runs.links == 1);
}

// Requires that make in `dir` has nothing to do: `make -q` exits 0, and `make` says so and runs
// no compiler. On failure shows why make thought otherwise.
void require_make_up_to_date(const fs::path& dir, const CompilerLog& cc, const std::string& when) {
    INFO(when);
    auto query = make_in(dir, cc, {"-q"});
    if (query.status != 0) {
        auto why = make_in(dir, cc, {"-n", "--debug=b"});
        INFO("make -q exited " << query.status << "; make -n --debug=b says:\n"
                               << tail(why.out) << tail(why.err));
        CHECK(query.status == 0);
    }
    auto build = make_in(dir, cc);
    INFO("make:\n" << build.out << build.err);
    REQUIRE(build.status == 0);
    CHECK(build.out.find("Nothing to be done for 'all'") != std::string::npos);
    auto runs = cc.take();
    INFO("compiler runs:\n" << runs.log);
    CHECK(runs.compiled.empty());
    CHECK(runs.links == 0);
}

// A fresh checkout of `checkout` at `copy`, as runner B's `git clone` gives it: the same bytes,
// with mtimes a few seconds after anything runner A wrote. `probe` is a file in it.
void fresh_copy(const fs::path& checkout, const fs::path& copy, const std::string& probe) {
    fs::create_directories(copy.parent_path());
    fbfs::test::run_tool_ok({"cp", "-r", checkout.string(), copy.string()});
    fbfs::test::run_tool_ok({"sh", "-c", "find \"$1\" -exec touch -d @$(( $(date +%s) + 3 )) {} +",
                             "sh", copy.string()});
    // Otherwise the test could pass without fbfs doing anything.
    REQUIRE(fs::last_write_time(copy / probe) != fs::last_write_time(checkout / probe));
}

}  // namespace

TEST_CASE("pack mount: a tree made through a mount comes back exactly after pack, wipe, unpack",
          "[fuse]") {
    require_root();  // chown to another owner, and unpack keeps owners only as root
    TempDir tmp;
    const auto store = tmp / "store";
    const auto pack_file = tmp / "cache" / "volumes.pack";
    fs::create_directories(pack_file.parent_path());
    Mount m(store, tmp / "mnt");
    make_rich_tree(m.path());

    const Snapshot before = snapshot(m.path());
    const auto atimes_before = atimes(m.path());
    const auto links_before = link_groups(m.path());
    REQUIRE(links_before == std::set<std::set<std::string>>{{"bin/hard-b", "src/hard-a"}});
    CHECK(atimes_before.at("src/one") == "-31536000.000000005");
    CHECK(time_text(lstat_of(m / "src/one").st_mtim) == "-86400.999999999");
    m.unmount();

    auto packed = pack(store, pack_file);
    require_ok(packed, "fbfs pack");
    INFO("fbfs pack said: " << packed.err);
    CHECK(std::count(packed.err.begin(), packed.err.end(), '\n') == 1);
    CHECK_THAT(packed.err, Catch::StartsWith("fbfs pack: 1 volumes"));
    CHECK_THAT(packed.err, Catch::Contains("-> " + pack_file.string()));
    REQUIRE(fs::is_regular_file(pack_file));
    CHECK(entries_of(pack_file.parent_path()) == std::set<std::string>{"volumes.pack"});
    const auto objects_in_pack = number_before(packed.err, "objects");
    REQUIRE(objects_in_pack);
    // 16 regular-file inodes, 14 distinct contents (one of them empty, which may need no object).
    CHECK(*objects_in_pack >= 13);
    CHECK(*objects_in_pack <= 14);
    CHECK(static_cast<std::size_t>(*objects_in_pack) == count_files(store / "objects"));

    fs::remove_all(store);
    REQUIRE(!fs::exists(store));
    auto unpacked = unpack(store, pack_file);
    require_ok(unpacked, "fbfs unpack");
    INFO("fbfs unpack said: " << unpacked.err);
    CHECK(std::count(unpacked.err.begin(), unpacked.err.end(), '\n') == 1);
    CHECK_THAT(unpacked.err, Catch::StartsWith("fbfs unpack: 1 volumes"));
    CHECK(number_before(unpacked.err, "objects") == objects_in_pack);
    CHECK(number_before(unpacked.err, "new") == objects_in_pack);
    CHECK(count_files(store / "objects") == static_cast<std::size_t>(*objects_in_pack));
    CHECK(entries_of(store / "tmp").empty());

    m.mount();
    // atimes first: reading files for the snapshot must not be what makes them agree.
    CHECK(atimes(m.path()) == atimes_before);
    check_same_tree(before, snapshot(m.path()));
    CHECK(link_groups(m.path()) == links_before);
    CHECK(lstat_of(m / "src/hard-a").st_nlink == 2);
    CHECK(readlink_of(m / "links/dangling") == "no/such/target");
    CHECK(readlink_of(m / "links/escape") == "../../etc/passwd");
    CHECK(stat_outcome(m / "links/escape") == "ok");  // an lstat: the link itself is there
    CHECK(read_path(m / "links/to-big") == random_bytes(4, (std::size_t{1} << 20) + 17));
    CHECK(fbfs::test::permissions(lstat_of(m / "bin/setuid-tool")) == 04755);
    CHECK(S_ISFIFO(lstat_of(m / "pipes/fifo").st_mode));
    // The unpacked volume is an ordinary one: it takes new files, and their inode numbers are
    // new ones, so nothing unpacked is overwritten.
    fs::create_directories(m / "after-unpack/dir");
    for (int i = 0; i < 20; ++i) {
        put_file(m / "after-unpack" / ("f" + std::to_string(i)), "new " + std::to_string(i));
    }
    REQUIRE(outcome(::link((m / "after-unpack/f0").c_str(), (m / "after-unpack/dir/l").c_str())) ==
            "ok");
    m.remount();
    CHECK(read_path(m / "after-unpack/f7") == "new 7");
    auto grown = snapshot(m.path());
    std::erase_if(grown, [](const auto& entry) {
        return entry.first == "." || entry.first.starts_with("after-unpack");
    });
    auto expected = before;
    expected.erase(".");
    check_same_tree(expected, grown);
    CHECK(link_groups(m.path()) ==
          std::set<std::set<std::string>>{{"bin/hard-b", "src/hard-a"},
                                          {"after-unpack/dir/l", "after-unpack/f0"}});
    m.unmount();

    auto verified = fbfs_cli({"verify", "--store", store.string()});
    INFO("fbfs verify: " << verified.out << verified.err);
    CHECK(verified.status == 0);

    // Unpacking the same pack again (a CI cache restored twice) finds every object there and
    // puts the volume back as packed.
    auto again = unpack(store, pack_file);
    require_ok(again, "fbfs unpack (again)");
    CHECK(number_before(again.err, "new") == 0);
    m.mount();
    CHECK(atimes(m.path()) == atimes_before);
    check_same_tree(before, snapshot(m.path()));
    CHECK(stat_outcome(m / "after-unpack") == "ENOENT");
}

TEST_CASE(
    "pack mount: extended attributes of files, directories and a hard link come back in a "
    "fresh store",
    "[fuse]") {
    require_root();  // trusted. attributes, which root alone may set and list
    TempDir tmp;
    const auto from = tmp / "from";
    const auto to = tmp / "to";
    const auto pack_file = tmp / "volumes.pack";
    Mount m(from, tmp / "mnt");
    fs::create_directories(m / "dir/sub");
    put_file(m / "dir/file", "attributed bytes\n");
    put_file(m / "plain", "no attributes\n");
    REQUIRE(outcome(::link((m / "dir/file").c_str(), (m / "linked").c_str())) == "ok");
    auto set = [&](const fs::path& path, const char* name, std::string_view value) {
        INFO(path << " " << name);
        REQUIRE(::lsetxattr(path.c_str(), name, value.data(), value.size(), 0) == 0);
    };
    set(m / "dir/file", "user.origin", "ci runner");
    set(m / "linked", "trusted.sum", std::string_view("\0\x01\xff", 3));  // the same inode
    set(m / "dir", "user.dir", std::string(3000, 'd'));
    set(m / "dir/sub", "trusted.empty", "");
    set(m.path(), "user.root", "r");
    set(m / "dir/sub", "security.label", "fbfs");
    const auto before = xattrs_under(m.path());
    REQUIRE(before.size() == 8);  // the hard-linked file's two attributes show under both names
    CHECK(before.at("linked user.origin") == "ci runner");
    m.unmount();
    auto digest = [](const fs::path& store) {
        auto result = fbfs_cli({"stat", "--store", store.string(), "--digest"});
        require_ok(result, "fbfs stat --digest");
        return result.out;
    };
    const auto digest_before = digest(from);

    require_ok(pack(from, pack_file), "fbfs pack");
    require_ok(unpack(to, pack_file), "fbfs unpack");
    CHECK(digest(to) == digest_before);
    Mount there(to, tmp / "there");
    CHECK(xattrs_under(there.path()) == before);
    CHECK(lstat_of(there / "linked").st_ino == lstat_of(there / "dir/file").st_ino);
    // What came back is the volume's own: it changes like any attribute, on every name.
    REQUIRE(::lremovexattr((there / "linked").c_str(), "user.origin") == 0);
    CHECK(::lgetxattr((there / "dir/file").c_str(), "user.origin", nullptr, 0) == -1);
    CHECK(errno == ENODATA);
    there.unmount();
    CHECK(digest(to) != digest_before);
}

TEST_CASE("pack mount: fbfs pack -o - piped into fbfs unpack - carries a volume to another store",
          "[fuse]") {
    TempDir tmp;
    const auto from = tmp / "from";
    const auto to = tmp / "to";
    Mount m(from, tmp / "mnt", {"--volume", "ws"});
    fs::create_directories(m / "a/b");
    put_file(m / "a/b/data", random_bytes(31, 2'000'000));
    put_file(m / "a/copy", random_bytes(31, 2'000'000));
    REQUIRE(outcome(::symlink("b/data", (m / "a/link").c_str())) == "ok");
    set_times(m / "a/copy", at(1'234'567'890, 123'456'789), at(1'234'567'891, 987'654'321));
    const Snapshot before = snapshot(m.path());
    m.unmount();

    auto result = fbfs::test::run(
        {"timeout", "-k", "10", k_fbfs_timeout, "/bin/bash", "-c",
         "set -o pipefail; \"$0\" pack --store \"$1\" -o - | \"$0\" unpack --store \"$2\" -",
         FBFS_BINARY, from.string(), to.string()});
    require_ok(result, "fbfs pack -o - | fbfs unpack -");
    CHECK_THAT(result.err, Catch::Contains("fbfs pack: 1 volumes"));
    CHECK_THAT(result.err, Catch::Contains("fbfs unpack: 1 volumes"));

    Mount there(to, tmp / "there", {"--volume", "ws"});
    check_same_tree(before, snapshot(there.path()));
}

TEST_CASE(
    "pack mount: runner B unpacks runner A's pack at another path and $HOME and make has "
    "nothing to do",
    "[fuse]") {
    TempDir tmp;
    const auto root = fs::canonical(tmp.path());
    const auto home_a = root / "home-a";
    const auto home_b = root / "home-b";
    const auto x = root / "runner-a" / "work" / "project";
    const auto y = root / "runner-b" / "_work" / "project" / "project";
    const auto mountpoint = root / "fixed" / "ws";
    const auto pack_file = root / "cache" / "fbfs.pack";
    for (const auto& dir : {home_a, home_b, pack_file.parent_path()}) {
        fs::create_directories(dir);
    }
    CompilerLog cc(root);
    const auto sources = write_make_project(x);

    {
        // The default store of runner A: what `fbfs mount` without --store uses there.
        Mount a(home_a / ".cache" / "fbfs", mountpoint, {"--source", x.string()});
        require_make_rebuilds(mountpoint, cc, sources, "runner A, cold");
        a.unmount();
    }
    require_ok(fbfs_at_home(home_a, {"pack", "-o", pack_file.string()}),
               "fbfs pack -o " + pack_file.string() + " (HOME=" + home_a.string() + ")");
    REQUIRE(fs::is_regular_file(pack_file));

    // Runner B shares nothing with runner A but the pack: A's checkout and home are gone.
    fresh_copy(x, y, "src/u0.c");
    fs::remove_all(x);
    fs::remove_all(home_a);
    auto unpacked = fbfs_at_home(home_b, {"unpack", pack_file.string()});
    require_ok(unpacked, "fbfs unpack " + pack_file.string() + " (HOME=" + home_b.string() + ")");
    CHECK_THAT(unpacked.err, Catch::StartsWith("fbfs unpack: 1 volumes"));
    const auto store_b = home_b / ".cache" / "fbfs";
    REQUIRE(fs::is_directory(store_b / "objects"));

    Mount b(store_b, mountpoint, {"--source", y.string()});
    require_make_up_to_date(mountpoint, cc, "runner B, fresh checkout, unpacked store");

    b.unmount();
    write_file(y / "src/u3.c", read_file(y / "src/u3.c") + "/* changed on runner B */\n");
    b.mount();
    require_make_rebuilds(mountpoint, cc, {"src/u3.c"}, "runner B, after changing src/u3.c");
    require_make_up_to_date(mountpoint, cc, "runner B, after rebuilding u3");
}

TEST_CASE(
    "pack mount: an overlay volume's deletions, edits, renames and opaque directories come "
    "back over another checkout",
    "[fuse]") {
    TempDir tmp;
    const auto root = fs::canonical(tmp.path());
    const auto x = root / "runner-a" / "checkout";
    const auto y = root / "runner-b" / "elsewhere" / "checkout";
    const auto mountpoint = root / "fixed" / "ws";
    const auto pack_file = root / "fbfs.pack";
    for (const char* dir : {"docs", "sub/deep", "src"}) {
        fs::create_directories(x / dir);
    }
    write_file(x / "docs/gone.txt", "deleted on A\n");
    write_file(x / "docs/edited.txt", "original\n");
    write_file(x / "docs/untouched.txt", "as checked out\n");
    write_file(x / "docs/renamed-from.txt", "moves\n");
    write_file(x / "docs/chmodded.sh", "#!/bin/sh\n");
    write_file(x / "sub/deep/old.txt", "old\n");
    write_file(x / "sub/old.txt", "old\n");
    write_file(x / "src/main.c", "int main(void) { return 0; }\n");

    Snapshot on_a;
    {
        Mount a(root / "store-a", mountpoint, {"--source", x.string()});
        const auto& m = a.path();
        REQUIRE(outcome(::unlink((m / "docs/gone.txt").c_str())) == "ok");
        put_file(m / "docs/edited.txt", "edited on A\n");
        REQUIRE(outcome(::rename((m / "docs/renamed-from.txt").c_str(),
                                 (m / "docs/renamed-to.txt").c_str())) == "ok");
        REQUIRE(outcome(::chmod((m / "docs/chmodded.sh").c_str(), 0755)) == "ok");
        fs::remove_all(m / "sub");
        fs::create_directories(m / "sub");  // over a whiteout: opaque, the lower sub/ is hidden
        put_file(m / "sub/new.txt", "new on A\n");
        fs::create_directories(m / "out/obj");
        put_file(m / "out/obj/main.o", random_bytes(41, 30'000));
        on_a = snapshot(m);
        a.unmount();
    }
    require_ok(pack(root / "store-a", pack_file), "fbfs pack");
    fresh_copy(x, y, "docs/untouched.txt");
    fs::remove_all(x);
    fs::remove_all(root / "store-a");
    require_ok(unpack(root / "store-b", pack_file), "fbfs unpack");

    Mount b(root / "store-b", mountpoint, {"--source", y.string()});
    check_same_tree(on_a, snapshot(b.path()));
    CHECK(stat_outcome(b / "docs/gone.txt") == "ENOENT");
    CHECK(stat_outcome(b / "docs/renamed-from.txt") == "ENOENT");
    CHECK(stat_outcome(b / "sub/deep") == "ENOENT");
    CHECK(read_path(b / "docs/edited.txt") == "edited on A\n");
    // Runner B's checkout is only read.
    CHECK(read_file(y / "docs/gone.txt") == "deleted on A\n");
    CHECK(read_file(y / "docs/edited.txt") == "original\n");
}

TEST_CASE(
    "pack mount: a volume whose daemon was killed with files open packs what a remount "
    "shows",
    "[fuse]") {
    TempDir tmp;
    const auto store = tmp / "store";
    const auto other = tmp / "other";
    const auto pack_file = tmp / "killed.pack";
    Mount m(store, tmp / "mnt");
    fs::create_directories(m / "dir");
    put_file(m / "dir/closed.bin", random_bytes(51, 120'000));
    put_file(m / "closed.txt", "closed before the kill\n");
    // An unlinked file still open (kept as an orphan), its bytes committed by fsync.
    auto orphan = fbfs::test::open_fd(m / "orphan.bin", O_RDWR | O_CREAT);
    fbfs::test::write_all(orphan.get(), random_bytes(52, 90'000));
    REQUIRE(::fsync(orphan.get()) == 0);
    REQUIRE(outcome(::unlink((m / "orphan.bin").c_str())) == "ok");
    REQUIRE(fbfs::test::pread_all(orphan.get()) == random_bytes(52, 90'000));
    // A file being written, its bytes in a staging file and not committed.
    auto open = fbfs::test::open_fd(m / "open.bin", O_WRONLY | O_CREAT);
    fbfs::test::write_all(open.get(), random_bytes(53, 200'000));
    REQUIRE(::sync_file_range(open.get(), 0, 0,
                              SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                  SYNC_FILE_RANGE_WAIT_AFTER) == 0);

    const auto found = daemon_pid(m.path());
    REQUIRE(found);
    const pid_t pid = *found;
    REQUIRE(::kill(pid, SIGKILL) == 0);  // the daemon this test started
    REQUIRE(fbfs::wait_until_exited(pid, std::chrono::seconds(10)));
    m.unmount();  // fbfs umount recovers a dead mount
    orphan.reset();
    open.reset();

    // Packed before any remount dropped the orphan and the staging file.
    auto packed = pack(store, pack_file);
    require_ok(packed, "fbfs pack after a killed daemon");
    require_ok(unpack(other, pack_file), "fbfs unpack");
    CHECK(entries_of(other / "tmp").empty());

    m.mount();
    const Snapshot remounted = snapshot(m.path());
    CHECK(stat_outcome(m / "orphan.bin") == "ENOENT");
    CHECK(read_path(m / "closed.txt") == "closed before the kill\n");
    m.unmount();
    Mount there(other, tmp / "there");
    check_same_tree(remounted, snapshot(there.path()));
    there.unmount();
    CHECK(!fs::exists(object_path(other, ObjectId::of(random_bytes(52, 90'000)))));
    for (const auto& s : {store, other}) {
        auto verified = fbfs_cli({"verify", "--store", s.string()});
        INFO("fbfs verify --store " << s << ": " << verified.out << verified.err);
        CHECK(verified.status == 0);
    }
}

TEST_CASE(
    "pack mount: unpacking over a volume whose daemon was killed with files open replaces "
    "it and leaves nothing of it behind",
    "[fuse]") {
    TempDir tmp;
    const auto source = tmp / "source";
    const auto target = tmp / "target";
    const auto pack_file = tmp / "source.pack";
    Snapshot packed_tree;
    {
        Mount s(source, tmp / "source-mnt");
        // Inode numbers the target's killed volume also used.
        for (int i = 0; i < 30; ++i) {
            put_file(s / ("f" + std::to_string(i)), random_bytes(70 + i, 1000 + i));
        }
        packed_tree = snapshot(s.path());
    }
    require_ok(pack(source, pack_file), "fbfs pack");

    Mount m(target, tmp / "mnt");
    auto orphan = fbfs::test::open_fd(m / "orphan.bin", O_RDWR | O_CREAT);
    fbfs::test::write_all(orphan.get(), random_bytes(62, 90'000));
    REQUIRE(::fsync(orphan.get()) == 0);
    REQUIRE(outcome(::unlink((m / "orphan.bin").c_str())) == "ok");
    for (int i = 0; i < 10; ++i) {
        put_file(m / ("t" + std::to_string(i)), random_bytes(90 + i, 2000));
    }
    auto open = fbfs::test::open_fd(m / "open.bin", O_WRONLY | O_CREAT);
    fbfs::test::write_all(open.get(), random_bytes(63, 200'000));
    REQUIRE(::sync_file_range(open.get(), 0, 0,
                              SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                  SYNC_FILE_RANGE_WAIT_AFTER) == 0);
    const auto found = daemon_pid(m.path());
    REQUIRE(found);
    const pid_t pid = *found;
    REQUIRE(::kill(pid, SIGKILL) == 0);  // the daemon this test started
    REQUIRE(fbfs::wait_until_exited(pid, std::chrono::seconds(10)));
    m.unmount();
    orphan.reset();
    open.reset();

    require_ok(unpack(target, pack_file), "fbfs unpack over the killed volume");
    m.mount();
    check_same_tree(packed_tree, snapshot(m.path()));
    m.unmount();
    CHECK(entries_of(target / "tmp").empty());
    CHECK(!fs::exists(object_path(target, ObjectId::of(random_bytes(62, 90'000)))));
    CHECK(!fs::exists(object_path(target, ObjectId::of(random_bytes(90, 2000)))));
    auto verified = fbfs_cli({"verify", "--store", target.string()});
    INFO("fbfs verify: " << verified.out << verified.err);
    CHECK(verified.status == 0);
}

TEST_CASE(
    "pack mount: unpack into a store whose volume is mounted is refused with the pid and "
    "works after umount",
    "[fuse]") {
    TempDir tmp;
    const auto target = tmp / "target";
    const auto other = tmp / "other";
    const auto pack_file = tmp / "other.pack";

    Snapshot packed_tree;
    {
        Mount o(other, tmp / "other-mnt");
        fs::create_directories(o / "from-pack/dir");
        put_file(o / "from-pack/dir/data", random_bytes(11, 100'000));
        put_file(o / "from-pack/small", "packed\n");
        packed_tree = snapshot(o.path());
        o.unmount();
    }
    require_ok(pack(other, pack_file), "fbfs pack --store other");

    Mount m(target, tmp / "mnt");
    fs::create_directories(m / "mine");
    put_file(m / "mine/keep.txt", "the target's own\n");
    put_file(m / "mine/big", random_bytes(12, 300'000));
    const Snapshot mounted_tree = snapshot(m.path());
    const auto found = daemon_pid(m.path());
    REQUIRE(found);
    const auto pid = std::to_string(*found);

    auto refused = unpack(target, pack_file);
    check_refused(refused, {"mounted", pid, "'default'"});
    CHECK(entries_of(target / "tmp").empty());
    // The mount did not notice: same tree, and it still serves reads and writes.
    check_same_tree(mounted_tree, snapshot(m.path()));
    CHECK(read_path(m / "mine/keep.txt") == "the target's own\n");
    put_file(m / "mine/written-after", "still works\n");
    CHECK(read_path(m / "mine/written-after") == "still works\n");
    REQUIRE(outcome(::unlink((m / "mine/written-after").c_str())) == "ok");
    const Snapshot used_tree = snapshot(m.path());
    m.remount();
    check_same_tree(used_tree, snapshot(m.path()));
    m.unmount();

    auto unpacked = unpack(target, pack_file);
    require_ok(unpacked, "fbfs unpack after umount");
    m.mount();
    check_same_tree(packed_tree, snapshot(m.path()));
    CHECK(stat_outcome(m / "mine") == "ENOENT");
    m.unmount();
    CHECK(fbfs_cli({"verify", "--store", target.string()}).status == 0);
}

TEST_CASE("pack mount: packing a mounted volume is refused and writes no file", "[fuse]") {
    TempDir tmp;
    const auto store = tmp / "store";
    const auto out = tmp / "out";
    fs::create_directories(out);
    {
        Mount tc(store, tmp / "tc", {"--volume", "tc"});
        put_file(tc / "tool", "a toolchain file\n");
    }
    Mount m(store, tmp / "mnt");
    put_file(m / "file", random_bytes(13, 50'000));
    const auto found = daemon_pid(m.path());
    REQUIRE(found);
    const auto pid = std::to_string(*found);

    SECTION("all volumes, the default") {
        check_refused(pack(store, out / "all.pack"), {"mounted", "'default'", pid});
    }
    SECTION("the mounted volume by name") {
        check_refused(pack(store, out / "default.pack", {"--volume", "default"}),
                      {"mounted", "'default'", pid});
    }
    SECTION("to stdout") {
        auto refused = pack(store, "-");
        check_refused(refused, {"mounted", "'default'", pid});
        CHECK(refused.out.empty());
    }
    // No pack and no temp file beside it.
    CHECK(entries_of(out).empty());
    CHECK(read_path(m / "file") == random_bytes(13, 50'000));

    // Another volume of the same store, not mounted, packs while this one is mounted.
    require_ok(pack(store, out / "tc.pack", {"--volume", "tc"}), "fbfs pack --volume tc");
    CHECK(entries_of(out) == std::set<std::string>{"tc.pack"});
    fs::remove(out / "tc.pack");

    m.unmount();
    require_ok(pack(store, out / "all.pack"), "fbfs pack after umount");
    CHECK(entries_of(out) == std::set<std::string>{"all.pack"});
}

TEST_CASE("pack mount: a volume cannot be mounted while it is being packed", "[fuse]") {
    TempDir tmp;
    const auto store = tmp / "store";
    const auto content = random_bytes(61, 4 << 20);  // far more than a pipe holds
    Mount m(store, tmp / "mnt");
    put_file(m / "big.bin", content);
    m.unmount();

    int status = -1;
    std::string pack_bytes;
    {
        StalledPack packing(store, tmp / "pack.err");
        std::optional<pid_t> holder;
        for (int i = 0; i < 1000 && holder != packing.pid(); ++i) {
            ::usleep(10'000);
            holder = fbfs::VolumeLock::holder(store, "default");
        }
        INFO("fbfs pack's stderr: " << read_file(tmp / "pack.err"));
        REQUIRE(holder == packing.pid());

        auto refused = fbfs_cli({"mount", "--store", store.string(), (tmp / "mnt").string()});
        check_refused(refused, {"'default'", std::to_string(packing.pid())});
        CHECK(fbfs::test::mounts_at(fs::canonical(tmp / "mnt")).empty());
        pack_bytes = packing.drain(status);
    }
    INFO("fbfs pack's stderr: " << read_file(tmp / "pack.err"));
    REQUIRE(status == 0);

    // The pack was not disturbed, and the volume mounts once it is written.
    write_file(tmp / "stalled.pack", pack_bytes);
    require_ok(unpack(tmp / "other", tmp / "stalled.pack"), "fbfs unpack of the stalled pack");
    Mount there(tmp / "other", tmp / "there");
    CHECK(read_path(there / "big.bin") == content);
    m.mount();
    CHECK(read_path(m / "big.bin") == content);
}

TEST_CASE(
    "pack mount: unpacking a newer pack of a volume replaces it and leaves other volumes "
    "alone",
    "[fuse]") {
    TempDir tmp;
    const auto source_store = tmp / "source";
    const auto target = tmp / "target";
    const auto first_pack = tmp / "first.pack";
    const auto second_pack = tmp / "second.pack";
    const std::string shared = random_bytes(21, 80'000);      // also in the target's tc volume
    const std::string only_first = random_bytes(22, 90'000);  // nothing else names it
    const std::string kept = random_bytes(23, 70'000);        // in both packs

    Snapshot first_tree, second_tree;
    {
        Mount ws(source_store, tmp / "source-mnt", {"--volume", "ws"});
        fs::create_directories(ws / "first-dir/sub");
        put_file(ws / "first-dir/sub/only-first.bin", only_first);
        put_file(ws / "first-only.txt", shared);
        put_file(ws / "kept.bin", kept);
        put_file(ws / "changed.txt", "version 1\n");
        first_tree = snapshot(ws.path());
        ws.unmount();
        require_ok(pack(source_store, first_pack, {"--volume", "ws"}), "fbfs pack (first)");

        ws.mount();
        fs::remove_all(ws / "first-dir");
        fs::remove(ws / "first-only.txt");
        put_file(ws / "changed.txt", "version 2\n");
        put_file(ws / "second-only.txt", "new in the second pack\n");
        second_tree = snapshot(ws.path());
        ws.unmount();
        require_ok(pack(source_store, second_pack, {"--volume", "ws"}), "fbfs pack (second)");
    }

    // The target store has its own volume tc, mounted through both unpacks.
    Mount tc(target, tmp / "tc", {"--volume", "tc"});
    put_file(tc / "same-bytes-as-first-only", shared);
    put_file(tc / "tool", "a toolchain file\n");
    const Snapshot tc_tree = snapshot(tc.path());

    require_ok(unpack(target, first_pack), "fbfs unpack (first)");
    Mount ws(target, tmp / "ws", {"--volume", "ws"});
    check_same_tree(first_tree, snapshot(ws.path()));
    ws.unmount();
    REQUIRE(fs::exists(object_path(target, ObjectId::of(only_first))));

    require_ok(unpack(target, second_pack), "fbfs unpack (second)");
    ws.mount();
    check_same_tree(second_tree, snapshot(ws.path()));
    CHECK(stat_outcome(ws / "first-only.txt") == "ENOENT");
    CHECK(stat_outcome(ws / "first-dir") == "ENOENT");
    CHECK(read_path(ws / "changed.txt") == "version 2\n");
    ws.unmount();
    // An object only the replaced tree named is gone; one the other volume names stays.
    CHECK(!fs::exists(object_path(target, ObjectId::of(only_first))));
    CHECK(fs::exists(object_path(target, ObjectId::of(shared))));
    CHECK(fs::exists(object_path(target, ObjectId::of(kept))));

    check_same_tree(tc_tree, snapshot(tc.path()));
    tc.remount();
    check_same_tree(tc_tree, snapshot(tc.path()));
    CHECK(read_path(tc / "same-bytes-as-first-only") == shared);
    tc.unmount();

    auto verified = fbfs_cli({"verify", "--store", target.string()});
    INFO("fbfs verify: " << verified.out << verified.err);
    CHECK(verified.status == 0);
}
