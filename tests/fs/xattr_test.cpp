// Extended attributes through a real mount, asserted as the tools that keep them (setfattr,
// getfattr, cp -a, tar --xattrs, rsync -X, setcap) rely on: ext4's answers, errors and limits
// included, checked against a native directory beside the mount (ext4 on the test machines);
// attributes that survive a remount, a rename, a hard link and a copy-up; an inode's attributes
// that go with it; POSIX ACLs refused as docs/ARCHITECTURE.md says.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/mount.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tree.h"

namespace fs = std::filesystem;
using fbfs::test::check_same_tree;
using fbfs::test::lstat_of;
using fbfs::test::Mount;
using fbfs::test::MountedStore;
using fbfs::test::open_fd;
using fbfs::test::outcome;
using fbfs::test::put_file;
using fbfs::test::random_bytes;
using fbfs::test::read_path;
using fbfs::test::require_root;
using fbfs::test::run;
using fbfs::test::run_cli;
using fbfs::test::RunResult;
using fbfs::test::snapshot;
using fbfs::test::stat_of;
using fbfs::test::TempDir;
using fbfs::test::write_all;
using fbfs::test::xattrs_of;

namespace {

bool is_ext4(const fs::path& dir) {
    struct statfs st {};
    return ::statfs(dir.c_str(), &st) == 0 && st.f_type == 0xEF53;
}

std::string set(const fs::path& path, const std::string& name, std::string_view value,
                int flags = 0) {
    return outcome(::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), flags));
}

// What getxattr(2) said: "size N" when asked with no buffer, else the value or the errno's name.
std::string get(const fs::path& path, const std::string& name, std::size_t buffer = 65536) {
    std::string value(buffer, '\0');
    ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buffer ? value.data() : nullptr, buffer);
    if (n < 0) {
        return outcome(n);
    }
    return buffer == 0 ? "size " + std::to_string(n) : value.substr(0, static_cast<std::size_t>(n));
}

// What listxattr(2) said, the names sorted (ext4 keeps its own order): "size N" with no buffer.
std::string list(const fs::path& path, std::size_t buffer = 65536) {
    std::string names(buffer, '\0');
    ssize_t n = ::llistxattr(path.c_str(), buffer ? names.data() : nullptr, buffer);
    if (n < 0) {
        return outcome(n);
    }
    if (buffer == 0) {
        return "size " + std::to_string(n);
    }
    std::vector<std::string> sorted;
    for (ssize_t at = 0; at < n;) {
        sorted.emplace_back(names.data() + at);
        at += static_cast<ssize_t>(sorted.back().size()) + 1;
    }
    std::sort(sorted.begin(), sorted.end());
    std::string out;
    for (const auto& name : sorted) {
        out += (out.empty() ? "" : ",") + name;
    }
    return out;
}

std::string remove(const fs::path& path, const std::string& name) {
    return outcome(::lremovexattr(path.c_str(), name.c_str()));
}

// One sequence of attribute calls and what each came to, run in `dir` (root may do all of it).
std::vector<std::pair<std::string, std::string>> attribute_calls(const fs::path& dir) {
    put_file(dir / "f", "content");
    put_file(dir / "full", "");
    fs::create_directory(dir / "d");
    fs::create_symlink("f", dir / "link");
    REQUIRE(::mkfifo((dir / "fifo").c_str(), 0644) == 0);
    auto f = dir / "f";
    std::string name255 = "user." + std::string(250, 'n');
    return {
        {"set user.a", set(f, "user.a", "1")},
        {"size of user.a", get(f, "user.a", 0)},
        {"get user.a", get(f, "user.a")},
        {"set user.long", set(f, "user.long", "0123456789")},
        {"get user.long into 4 bytes", get(f, "user.long", 4)},
        {"get user.missing", get(f, "user.missing")},
        {"create user.a again", set(f, "user.a", "2", XATTR_CREATE)},
        {"replace user.missing", set(f, "user.missing", "2", XATTR_REPLACE)},
        {"replace user.a", set(f, "user.a", "2", XATTR_REPLACE)},
        {"get replaced user.a", get(f, "user.a")},
        {"set an empty value", set(f, "user.empty", "")},
        {"get the empty value", get(f, "user.empty")},
        {"binary value", set(f, "user.bin", std::string("\0\1\2\xff", 4))},
        {"get binary value", get(f, "user.bin")},
        {"trusted as root", set(f, "trusted.t", "t")},
        {"security as root", set(f, "security.s", "s")},
        {"list", list(f)},
        {"size of list", list(f, 0)},
        {"list into 8 bytes", list(f, 8)},
        {"remove user.missing", remove(f, "user.missing")},
        {"remove user.long", remove(f, "user.long")},
        {"get removed", get(f, "user.long")},
        {"list after remove", list(f)},
        {"name of 255 bytes", set(f, name255, "x")},
        {"name of 256 bytes", set(f, name255 + "n", "x")},
        {"a namespace alone", set(f, "user.", "x")},
        {"an unknown namespace", set(f, "other.x", "x")},
        {"system namespace", set(f, "system.x", "x")},
        {"get unknown namespace", get(f, "other.x")},
        {"value of 4000 bytes", set(dir / "full", "user.big", std::string(4000, 'v'))},
        {"one more of 100 bytes", set(dir / "full", "user.more", std::string(100, 'v'))},
        {"value of 5000 bytes", set(f, "user.huge", std::string(5000, 'v'))},
        {"value of 64 KiB", set(f, "user.huge", std::string(65536, 'v'))},
        {"value over 64 KiB", set(f, "user.huge", std::string(65537, 'v'))},
        {"user on a directory", set(dir / "d", "user.d", "dir")},
        {"get it", get(dir / "d", "user.d")},
        {"user on a symlink", set(dir / "link", "user.l", "x")},
        {"user on a fifo", set(dir / "fifo", "user.p", "x")},
        {"get user on a symlink", get(dir / "link", "user.l")},
        {"trusted on a symlink", set(dir / "link", "trusted.l", "x")},
        {"list the symlink", list(dir / "link")},
    };
}

// As nobody, with no capabilities, in `dir` (whose f has a trusted and a user attribute).
std::vector<std::pair<std::string, std::string>> calls_as_nobody(const fs::path& dir) {
    auto script =
        "setfattr -n user.x -v 1 f; echo set user $?; "
        "setfattr -n trusted.x -v 1 f; echo set trusted $?; "
        "getfattr --only-values -n trusted.t f; echo get trusted $?; "
        "getfattr --absolute-names -d -m - f; "
        "setfattr -n user.x -v 1 mine; echo set own $?; getfattr -n user.x mine";
    auto result = run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "-i",
                       "LC_ALL=C", "PATH=/usr/bin:/bin", "/bin/sh", "-c", script},
                      {.cwd = dir.string(), .env = {}, .input = {}});
    return {{"stdout", result.out}, {"stderr", result.err}};
}

// CHECKs that the mount gave `expected`, and that the native directory (when it is ext4) gave
// the same, call by call.
void check_calls(const std::vector<std::pair<std::string, std::string>>& on_mount,
                 const std::vector<std::pair<std::string, std::string>>& on_native,
                 const fs::path& native) {
    REQUIRE(on_mount.size() == on_native.size());
    bool ext4 = is_ext4(native);
    if (!ext4) {
        WARN("the native directory is not ext4: only fbfs's own answers are checked");
    }
    for (std::size_t i = 0; i < on_mount.size(); ++i) {
        INFO(on_mount[i].first);
        if (ext4) {
            CHECK(on_mount[i].second == on_native[i].second);
        }
    }
}

std::int64_t ctime_ns(const fs::path& path) {
    struct stat st = lstat_of(path);
    return static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
}

// Runs `argv`, requiring success; the failure shows what it printed.
RunResult run_ok(const std::vector<std::string>& argv) {
    auto result = run(argv);
    INFO(fbfs::test::command_line(argv)
         << "\nstdout: " << result.out << "\nstderr: " << result.err);
    REQUIRE(result.status == 0);
    return result;
}

// A small tree with attributes on files, a directory and the root, made natively.
void make_attributed_tree(const fs::path& root) {
    fs::create_directories(root / "dir" / "sub");
    put_file(root / "plain.txt", "no attributes\n");
    put_file(root / "dir" / "a.bin", random_bytes(3, 70000));
    put_file(root / "dir" / "sub" / "b.txt", "b\n");
    REQUIRE(set(root / "dir" / "a.bin", "user.checksum", "sha256:1234") == "ok");
    REQUIRE(set(root / "dir" / "a.bin", "user.mime_type", "application/octet-stream") == "ok");
    REQUIRE(set(root / "dir" / "sub" / "b.txt", "user.bytes", std::string("\0\xff\n", 3)) == "ok");
    REQUIRE(set(root / "dir", "user.dir", "yes") == "ok");
    REQUIRE(set(root / "dir" / "sub", "user.big", std::string(3000, 'z')) == "ok");
    // Times far from now: rsync leaves a directory's mtime alone when it is within the second.
    long i = 0;
    for (const char* path : {"plain.txt", "dir/a.bin", "dir/sub/b.txt", "dir/sub", "dir", "."}) {
        auto t = fbfs::test::at(1500000000 + ++i * 1000, 123456789);
        fbfs::test::set_times(root / path, t, t, AT_SYMLINK_NOFOLLOW);
    }
}

}  // namespace

TEST_CASE("Xattrs: set, get, list and remove give ext4's answers, errors and limits included",
          "[fuse]") {
    require_root();
    MountedStore m;
    fs::create_directory(m.tmp / "native");
    auto on_mount = attribute_calls(m.mount.path());
    auto on_native = attribute_calls(m.tmp / "native");
    check_calls(on_mount, on_native, m.tmp / "native");
    std::string name255 = "user." + std::string(250, 'n');
    std::vector<std::pair<std::string, std::string>> expected = {
        {"set user.a", "ok"},
        {"size of user.a", "size 1"},
        {"get user.a", "1"},
        {"set user.long", "ok"},
        {"get user.long into 4 bytes", "ERANGE"},
        {"get user.missing", "ENODATA"},
        {"create user.a again", "EEXIST"},
        {"replace user.missing", "ENODATA"},
        {"replace user.a", "ok"},
        {"get replaced user.a", "2"},
        {"set an empty value", "ok"},
        {"get the empty value", ""},
        {"binary value", "ok"},
        {"get binary value", std::string("\0\1\2\xff", 4)},
        {"trusted as root", "ok"},
        {"security as root", "ok"},
        {"list", "security.s,trusted.t,user.a,user.bin,user.empty,user.long"},
        {"size of list", "size 58"},
        {"list into 8 bytes", "ERANGE"},
        {"remove user.missing", "ENODATA"},
        {"remove user.long", "ok"},
        {"get removed", "ENODATA"},
        {"list after remove", "security.s,trusted.t,user.a,user.bin,user.empty"},
        {"name of 255 bytes", "ok"},
        {"name of 256 bytes", "ERANGE"},
        {"a namespace alone", "EINVAL"},
        {"an unknown namespace", "EOPNOTSUPP"},
        {"system namespace", "EOPNOTSUPP"},
        {"get unknown namespace", "EOPNOTSUPP"},
        {"value of 4000 bytes", "ok"},
        {"one more of 100 bytes", "ENOSPC"},
        {"value of 5000 bytes", "ENOSPC"},
        {"value of 64 KiB", "ENOSPC"},
        {"value over 64 KiB", "E2BIG"},
        {"user on a directory", "ok"},
        {"get it", "dir"},
        {"user on a symlink", "EPERM"},
        {"user on a fifo", "EPERM"},
        {"get user on a symlink", "ENODATA"},
        {"trusted on a symlink", "ok"},
        {"list the symlink", "trusted.l"},
    };
    REQUIRE(on_mount.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        INFO(expected[i].first);
        CHECK(on_mount[i].first == expected[i].first);
        CHECK(on_mount[i].second == expected[i].second);
    }
    // ENOTSUP and EOPNOTSUPP are one value on Linux; what the kernel would say if fbfs left the
    // calls out is that too, so the calls that succeed above are what shows they are served.
}

TEST_CASE("Xattrs: another user sees and changes only what ext4 lets it", "[fuse]") {
    require_root();
    MountedStore m({"--allow-other"});
    fs::permissions(m.tmp.path(), fs::perms(0755));
    fs::permissions(m.mount.path(), fs::perms(0755));
    auto native = m.tmp / "native";
    fs::create_directory(native);
    fs::permissions(native, fs::perms(0755));
    for (const auto& dir : {m.mount.path(), native}) {
        put_file(dir / "f", "root's");
        REQUIRE(set(dir / "f", "trusted.t", "secret") == "ok");
        REQUIRE(set(dir / "f", "user.u", "shown") == "ok");
        put_file(dir / "mine", "nobody's");
        REQUIRE(::chown((dir / "mine").c_str(), 65534, 65534) == 0);
    }
    auto on_mount = calls_as_nobody(m.mount.path());
    auto on_native = calls_as_nobody(native);
    check_calls(on_mount, on_native, native);
    // Writing needs write permission; trusted.* needs CAP_SYS_ADMIN and is not even listed.
    CHECK(on_mount[0].second ==
          "set user 1\nset trusted 1\nget trusted 1\n# file: f\nuser.u=\"shown\"\n\nset own 0\n"
          "# file: mine\nuser.x=\"1\"\n\n");
}

TEST_CASE("Xattrs: setting or removing one advances ctime, as on ext4", "[fuse]") {
    MountedStore m;
    put_file(m / "f", "x");
    auto before = ctime_ns(m / "f");
    ::usleep(20'000);
    REQUIRE(set(m / "f", "user.a", "1") == "ok");
    auto after_set = ctime_ns(m / "f");
    CHECK(after_set > before);
    ::usleep(20'000);
    REQUIRE(remove(m / "f", "user.a") == "ok");
    CHECK(ctime_ns(m / "f") > after_set);
    // Also while the file is open and written: the commit on close must not take it back.
    {
        auto fd = open_fd(m / "f", O_WRONLY | O_APPEND);
        write_all(fd.get(), "more");
        ::usleep(20'000);
        auto written = ctime_ns(m / "f");
        REQUIRE(set(m / "f", "user.b", "2") == "ok");
        CHECK(ctime_ns(m / "f") > written);
    }
    m.mount.remount();
    CHECK(get(m / "f", "user.b") == "2");
    CHECK(read_path(m / "f") == "xmore");
}

TEST_CASE("Xattrs: POSIX ACLs are refused with EOPNOTSUPP, and getfacl shows the modes", "[fuse]") {
    MountedStore m;
    put_file(m / "f", "x", 0640);
    auto refused = run({"setfacl", "-m", "u:nobody:r", (m / "f").string()});
    CHECK(refused.status != 0);
    CHECK_THAT(refused.err, Catch::Contains("Operation not supported"));
    auto shown = run({"getfacl", "--omit-header", (m / "f").string()});
    CHECK(shown.status == 0);
    CHECK(shown.out == "user::rw-\ngroup::r--\nother::---\n\n");
    CHECK(get(m / "f", "system.posix_acl_access") == "EOPNOTSUPP");
    CHECK(list(m / "f").empty());
}

TEST_CASE("Xattrs: attributes survive a remount, a rename and a hard link, and go with the inode",
          "[fuse]") {
    MountedStore m;
    put_file(m / "f", "data");
    REQUIRE(set(m / "f", "user.a", "1") == "ok");
    REQUIRE(set(m / "f", "user.b", std::string(2000, 'b')) == "ok");
    REQUIRE(::link((m / "f").c_str(), (m / "g").c_str()) == 0);
    REQUIRE(::rename((m / "f").c_str(), (m / "h").c_str()) == 0);
    fs::create_directory(m / "d");
    REQUIRE(set(m / "d", "user.dir", "d") == "ok");
    REQUIRE(::rename((m / "d").c_str(), (m / "moved").c_str()) == 0);

    m.mount.remount();
    CHECK(xattrs_of(m / "g") ==
          std::map<std::string, std::string>{{"user.a", "1"}, {"user.b", std::string(2000, 'b')}});
    // One inode, two names: a change through one shows through the other.
    REQUIRE(set(m / "g", "user.c", "3") == "ok");
    CHECK(get(m / "h", "user.c") == "3");
    CHECK(get(m / "moved", "user.dir") == "d");

    // A file removed while open keeps its attributes until its last close.
    {
        auto fd = open_fd(m / "h", O_RDONLY);
        REQUIRE(::unlink((m / "h").c_str()) == 0);
        REQUIRE(::unlink((m / "g").c_str()) == 0);
        char value[8] = {};
        CHECK(::fgetxattr(fd.get(), "user.c", value, sizeof value) == 1);
        CHECK(::fsetxattr(fd.get(), "user.late", "x", 1, 0) == 0);
    }
    REQUIRE(::rmdir((m / "moved").c_str()) == 0);
    m.mount.unmount();
    // No attribute outlives its inode: fbfs verify counts one that does as a problem.
    auto verified = run_cli({"verify", "--store", m.store().string()});
    INFO(verified.out << verified.err);
    CHECK(verified.status == 0);
    CHECK_THAT(verified.out, Catch::Contains("0 problems"));
}

TEST_CASE("Xattrs: cp -a, tar --xattrs and rsync -X carry attributes in and out as on ext4",
          "[fuse]") {
    MountedStore m;
    auto native = m.tmp / "native";
    make_attributed_tree(native);
    auto expected = snapshot(native);
    REQUIRE(expected["dir/a.bin"].find("user.checksum=") != std::string::npos);
    auto check_copy = [&](const std::string& how, const fs::path& copy) {
        INFO(how);
        check_same_tree(expected, snapshot(copy));
    };
    auto tar = [](const fs::path& dir, const std::string& mode, const fs::path& archive) {
        run_ok({"tar", "--xattrs", "--xattrs-include=user.*", "-C", dir.string(), mode,
                archive.string(), "."});
    };

    run_ok({"cp", "-a", native.string(), (m / "cp").string()});
    check_copy("cp -a into the mount", m / "cp");
    run_ok({"cp", "-a", (m / "cp").string(), (m.tmp / "cp-back").string()});
    check_copy("cp -a out of the mount", m.tmp / "cp-back");

    tar(native, "-cf", m.tmp / "in.tar");
    fs::create_directory(m / "tar");
    tar(m / "tar", "-xf", m.tmp / "in.tar");
    check_copy("tar --xattrs -x into the mount", m / "tar");
    tar(m / "tar", "-cf", m.tmp / "out.tar");
    fs::create_directory(m.tmp / "tar-back");
    tar(m.tmp / "tar-back", "-xf", m.tmp / "out.tar");
    check_copy("tar --xattrs -c in the mount", m.tmp / "tar-back");

    run_ok({"rsync", "-aX", native.string() + "/", (m / "rsync").string()});
    check_copy("rsync -aX into the mount", m / "rsync");
    run_ok({"rsync", "-aX", (m / "rsync").string() + "/", (m.tmp / "rsync-back").string()});
    check_copy("rsync -aX out of the mount", m.tmp / "rsync-back");

    m.mount.remount();
    check_copy("cp -a into the mount, after a remount", m / "cp");
}

TEST_CASE("Xattrs: a write drops security.capability as on ext4, also one set after a write",
          "[fuse]") {
    require_root();
    MountedStore m;
    auto native = m.tmp / "native";
    fs::create_directory(native);
    auto script =
        "printf x > f && setcap cap_net_raw+ep f && getcap f && "
        "printf y >> f && getcap f && echo after first write && "
        "setcap cap_net_raw+ep f && getcap f && printf z >> f && getcap f && "
        "echo after second write && cat f";
    auto on_mount =
        run({"/bin/sh", "-c", script}, {.cwd = m.mount.path().string(), .env = {}, .input = {}});
    auto on_native =
        run({"/bin/sh", "-c", script}, {.cwd = native.string(), .env = {}, .input = {}});
    INFO("mount: " << on_mount.out << on_mount.err << "\nnative: " << on_native.out
                   << on_native.err);
    CHECK(on_mount.status == 0);
    CHECK(on_mount.out ==
          "f cap_net_raw=ep\nafter first write\nf cap_net_raw=ep\nafter second write\nxyz");
    if (is_ext4(native)) {
        CHECK(on_mount.out == on_native.out);
    }
}

TEST_CASE("Xattrs: a source file's attributes show through an overlay and survive its copy-up",
          "[fuse]") {
    using Attributes = std::map<std::string, std::string>;
    TempDir tmp;
    auto src = tmp / "src";
    fs::create_directories(src / "d");
    for (const char* name : {"f", "g", "h", "d/inner", "plain"}) {
        put_file(src / name, std::string("lower ") + name + "\n");
    }
    fs::create_symlink("f", src / "link");
    REQUIRE(set(src / "f", "user.a", "1") == "ok");
    REQUIRE(set(src / "f", "user.b", std::string(1000, 'b')) == "ok");
    REQUIRE(set(src / "g", "user.g", "g") == "ok");
    REQUIRE(set(src / "h", "user.h", "h") == "ok");
    REQUIRE(set(src / "d", "user.d", "d") == "ok");
    REQUIRE(set(src / "d" / "inner", "user.i", "i") == "ok");
    Mount mount(tmp / "store", tmp / "mnt", {"--source", src.string()});
    auto m = mount.path();

    // Before any copy-up: what the source file has, read afresh each time.
    CHECK(xattrs_of(m / "f") == Attributes{{"user.a", "1"}, {"user.b", std::string(1000, 'b')}});
    CHECK(xattrs_of(m / "d") == Attributes{{"user.d", "d"}});
    CHECK(get(m / "f", "user.missing") == "ENODATA");
    CHECK(list(m / "link").empty());
    CHECK(list(m / "plain").empty());
    REQUIRE(set(src / "g", "user.g", "changed in the source") == "ok");
    CHECK(get(m / "g", "user.g") == "changed in the source");
    auto source_before = snapshot(src);

    // Each kind of change copies up, and the copy keeps the attributes.
    {
        auto fd = open_fd(m / "f", O_WRONLY | O_APPEND);
        write_all(fd.get(), "more\n");
    }
    REQUIRE(set(m / "g", "user.new", "new") == "ok");
    REQUIRE(remove(m / "h", "user.h") == "ok");
    put_file(m / "d" / "made-here", "upper\n");  // copies the directory up

    auto check_views = [&] {
        CHECK(read_path(m / "f") == "lower f\nmore\n");
        CHECK(xattrs_of(m / "f") ==
              Attributes{{"user.a", "1"}, {"user.b", std::string(1000, 'b')}});
        CHECK(xattrs_of(m / "g") ==
              Attributes{{"user.g", "changed in the source"}, {"user.new", "new"}});
        CHECK(xattrs_of(m / "h").empty());
        CHECK(xattrs_of(m / "d") == Attributes{{"user.d", "d"}});
        CHECK(xattrs_of(m / "d" / "inner") == Attributes{{"user.i", "i"}});
    };
    check_views();
    mount.remount();
    check_views();
    // Copied up, a file no longer follows its source's attributes.
    REQUIRE(set(src / "f", "user.a", "changed later") == "ok");
    CHECK(get(m / "f", "user.a") == "1");
    REQUIRE(set(src / "f", "user.a", "1") == "ok");

    mount.unmount();
    check_same_tree(source_before, snapshot(src));
}
