// A volume pulled from a remote cache without --eager, mounted: each file's bytes are fetched the
// first time it is read, checked by hash and kept; stat never fetches; a fetch that fails is EIO
// and a log line while the daemon goes on; `fbfs verify` tells remote objects from lost ones.
// And two runners sharing only nginx: B's pull moves only the manifest, its no-op make only the
// depfiles make reads. Bytes moved are counted from nginx's access log.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "store/base/object_id.h"
#include "tests/support/fetch_temps.h"
#include "tests/support/compiler_log.h"
#include "tests/support/http_servers.h"
#include "tests/support/make_project.h"
#include "tests/support/mount.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::test::CompilerLog;
using fbfs::test::make_in;
using fbfs::ObjectId;
using fbfs::test::BadServer;
using fbfs::test::LoggedRequest;
using fbfs::test::Mount;
using fbfs::test::NginxServer;
using fbfs::test::read_file;
using fbfs::test::run;
using fbfs::test::run_cli;
using fbfs::test::RunOptions;
using fbfs::test::RunResult;
using fbfs::test::TempDir;
using fbfs::test::write_file;

namespace {

void require_ok(const RunResult& result, const std::string& what) {
    INFO(what << " exited " << result.status << "\nstderr: " << result.err);
    REQUIRE(result.status == 0);
}

// The requests nginx logged after the first `from`.
std::vector<LoggedRequest> since(const NginxServer& nginx, std::size_t from) {
    auto all = nginx.requests();
    return {all.begin() + static_cast<std::ptrdiff_t>(std::min(from, all.size())), all.end()};
}

std::set<std::string> cas_gets(const std::vector<LoggedRequest>& requests) {
    std::set<std::string> ids;
    for (const auto& r : requests) {
        if (r.method == "GET" && r.path.starts_with("/cache/cas/")) {
            ids.insert(r.path.substr(std::string("/cache/cas/").size()));
        }
    }
    return ids;
}

// read(2) of a whole file: its bytes, or the errno of the first failure.
struct ReadOutcome {
    std::string bytes;
    int error = 0;
};
ReadOutcome read_outcome(const fs::path& path) {
    ReadOutcome out;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        out.error = errno;
        return out;
    }
    char buffer[65536];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0) {
            out.error = errno;
            break;
        }
        if (n == 0) {
            break;
        }
        out.bytes.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

std::string content_of(int i) {
    return "file " + std::to_string(i) + std::string(5000 + i, 'q');
}

// Store `a` with volume "default": files f0..f4 written through a mount, pushed as "main".
void push_five_files(const fs::path& a, const fs::path& mountpoint, const std::string& url) {
    {
        Mount m(a, mountpoint);
        for (int i = 0; i < 5; ++i) {
            write_file(m / ("f" + std::to_string(i)), content_of(i));
        }
        m.unmount();
    }
    require_ok(run_cli({"push", "--store", a.string(), "--remote", url, "--key", "main"}),
               "fbfs push");
}

// Store `b` pulled lazily from `url`'s "main", pushed from `a` by push_five_files.
void pull_five_files(const fs::path& a, const fs::path& b, const fs::path& mountpoint,
                     const std::string& url) {
    push_five_files(a, mountpoint, url);
    require_ok(run_cli({"pull", "--store", b.string(), "--remote", url, "--key", "main"}),
               "fbfs pull");
}

bool tmp_has_fetch_files(const fs::path& store) {
    for (const auto& entry : fs::directory_iterator(store / "tmp")) {
        if (entry.path().filename().string().starts_with("fetch-")) {
            return true;
        }
    }
    return false;
}

}  // namespace

TEST_CASE("remote mount: a lazily pulled file is fetched on its first read, never on stat",
          "[fuse]") {
    NginxServer nginx;
    TempDir tmp;
    pull_five_files(tmp / "a", tmp / "b", tmp / "mnt", nginx.url());
    auto verified = run_cli({"verify", "--store", (tmp / "b").string()});
    CHECK(verified.status == 0);
    CHECK(verified.out.find("5 objects remote, not fetched yet") != std::string::npos);

    Mount b(tmp / "b", tmp / "mnt");
    auto before = nginx.requests().size();
    for (int i = 0; i < 5; ++i) {
        CHECK(fs::file_size(b / ("f" + std::to_string(i))) == content_of(i).size());
    }
    CHECK(since(nginx, before).empty());

    auto read = read_outcome(b / "f2");
    CHECK(read.error == 0);
    CHECK(read.bytes == content_of(2));
    std::string id = ObjectId::of(content_of(2)).hex();
    CHECK(cas_gets(since(nginx, before)) == std::set<std::string>{id});
    CHECK(fs::exists(tmp / "b" / "objects" / id.substr(0, 2) / id.substr(2)));

    SECTION("a second read asks nothing") {
        auto count = nginx.requests().size();
        b.remount();
        CHECK(read_outcome(b / "f2").bytes == content_of(2));
        CHECK(nginx.requests().size() == count);
    }
    SECTION("a file whose object cannot be fetched is EIO; the daemon goes on") {
        std::string lost = ObjectId::of(content_of(3)).hex();
        fs::remove(nginx.root() / "cache" / "cas" / lost);
        auto failed = read_outcome(b / "f3");
        CHECK(failed.error == EIO);
        CHECK(failed.bytes.empty());
        CHECK(read_outcome(b / "f4").bytes == content_of(4));
        CHECK_FALSE(fs::exists(tmp / "b" / "objects" / lost.substr(0, 2) / lost.substr(2)));
        CHECK_FALSE(tmp_has_fetch_files(tmp / "b"));
        b.unmount();
        std::string log = read_file(tmp / "b" / "log" / "default.log");
        CHECK(log.find("cannot fetch object " + lost) != std::string::npos);
        CHECK(log.find("404 Not Found") != std::string::npos);
    }
    SECTION("without the recorded origin, verify calls the objects missing") {
        b.unmount();
        fs::remove(tmp / "b" / "remote-origin");
        auto lost = run_cli({"verify", "--store", (tmp / "b").string()});
        CHECK(lost.status == 1);
        CHECK(lost.err.find("missing object") != std::string::npos);
    }
}

TEST_CASE("remote mount: a mount removes the temp files of fetches that were killed, no other",
          "[fuse]") {
    NginxServer nginx;
    TempDir tmp;
    pull_five_files(tmp / "a", tmp / "b", tmp / "mnt", nginx.url());
    fbfs::test::PlantedFetchTemps planted(tmp / "b" / "tmp");

    Mount b(tmp / "b", tmp / "mnt");
    CHECK_FALSE(fs::exists(planted.abandoned));
    CHECK(fs::exists(planted.locked));
    CHECK(fs::exists(planted.live));
    CHECK(read_outcome(b / "f1").bytes == content_of(1));
}

TEST_CASE("remote mount: wrong bytes from the cache are refused by hash, EIO, nothing kept",
          "[fuse]") {
    NginxServer nginx;
    BadServer liar("wrong-bytes");
    TempDir tmp;
    push_five_files(tmp / "a", tmp / "mnt", nginx.url());
    require_ok(
        run_cli({"push", "--store", (tmp / "a").string(), "--remote", liar.url(), "--key", "main"}),
        "fbfs push to the lying server");
    require_ok(run_cli({"pull", "--store", (tmp / "b").string(), "--remote", nginx.url(), "--key",
                        "main"}),
               "fbfs pull");
    Mount b(tmp / "b", tmp / "mnt", {"--remote", liar.url()});
    auto read = read_outcome(b / "f1");
    CHECK(read.error == EIO);
    std::string id = ObjectId::of(content_of(1)).hex();
    CHECK_FALSE(fs::exists(tmp / "b" / "objects" / id.substr(0, 2) / id.substr(2)));
    CHECK_FALSE(tmp_has_fetch_files(tmp / "b"));
    b.unmount();
    CHECK(read_file(tmp / "b" / "log" / "default.log").find("refused") != std::string::npos);
}

namespace {

constexpr int k_units = 5;

// A small C project at `root`: src/u0.c..u4.c (each with its own header), src/main.c, and the
// depfile Makefile. Returns the sources.
std::set<std::string> write_project(const fs::path& root) {
    fs::create_directories(root / "src");
    fs::create_directories(root / "include");
    std::set<std::string> sources{"src/main.c"};
    std::string declarations;
    std::string calls;
    for (int i = 0; i < k_units; ++i) {
        std::string unit = "u" + std::to_string(i);
        write_file(root / "include" / (unit + ".h"),
                   "#define K_" + unit + " " + std::to_string(i + 7) + "\n");
        write_file(root / "src" / (unit + ".c"), "#include \"" + unit + ".h\"\nint " + unit +
                                                     "(int x) { return x * K_" + unit + "; }\n");
        sources.insert("src/" + unit + ".c");
        declarations += "int " + unit + "(int);\n";
        calls += "    sum += " + unit + "(sum & 0xff);\n";
    }
    write_file(root / "src/main.c", "#include <stdio.h>\n" + declarations +
                                        "int main(void) {\n    int sum = 1;\n" + calls +
                                        "    printf(\"%d\\n\", sum);\n    return 0;\n}\n");
    write_file(root / "Makefile", std::string(fbfs::test::k_depfile_makefile));
    return sources;
}

// `fbfs ARGS` as a runner whose home is `home`, with no $FBFS_STORE or $XDG_CACHE_HOME: its
// default store is `home`/.cache/fbfs.
RunResult fbfs_at_home(const fs::path& home, const std::vector<std::string>& args) {
    std::vector<std::string> argv{
        "env", "-u", "FBFS_STORE", "-u", "XDG_CACHE_HOME", "HOME=" + home.string(), FBFS_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
}

}  // namespace

TEST_CASE(
    "remote mount: runner B pulls runner A's build from nginx; its no-op make compiles nothing "
    "and fetches only the depfiles",
    "[fuse]") {
    NginxServer nginx;
    TempDir tmp;
    const auto root = fs::canonical(tmp.path());
    const auto home_a = root / "home-a";
    const auto home_b = root / "home-b";
    const auto x = root / "runner-a" / "work" / "project";
    const auto y = root / "runner-b" / "_work" / "project";
    const auto mountpoint = root / "fixed" / "ws";
    fs::create_directories(home_a);
    fs::create_directories(home_b);
    CompilerLog cc(root);
    const auto sources = write_project(x);
    {
        Mount a(home_a / ".cache" / "fbfs", mountpoint, {"--source", x.string()});
        auto built = make_in(mountpoint, cc);
        INFO(built.out << built.err);
        REQUIRE(built.status == 0);
        auto built_runs = cc.take();
        CHECK(std::set<std::string>(built_runs.compiled.begin(), built_runs.compiled.end()) ==
              sources);
        a.unmount();
    }
    require_ok(fbfs_at_home(home_a, {"push", "--remote", nginx.url(), "--key", "main"}),
               "runner A: fbfs push");

    // Runner B shares nothing with A but the cache: a fresh checkout with new mtimes.
    fs::create_directories(y.parent_path());
    fbfs::test::run_tool_ok({"cp", "-r", x.string(), y.string()});
    fbfs::test::run_tool_ok(
        {"sh", "-c", "find \"$1\" -exec touch -d @$(( $(date +%s) + 3 )) {} +", "sh", y.string()});
    fs::remove_all(x);
    fs::remove_all(home_a);

    auto before_pull = nginx.requests().size();
    require_ok(fbfs_at_home(home_b, {"pull", "--remote", nginx.url(), "--key", "main"}),
               "runner B: fbfs pull");
    auto pulled = since(nginx, before_pull);
    REQUIRE(pulled.size() == 2);  // the key and the manifest, nothing else
    CHECK(pulled[0].path.starts_with("/cache/ac/"));
    CHECK(cas_gets(pulled).size() == 1);

    Mount b(home_b / ".cache" / "fbfs", mountpoint, {"--source", y.string()});
    auto before_make = nginx.requests().size();
    auto noop = make_in(mountpoint, cc);
    INFO(noop.out << noop.err);
    REQUIRE(noop.status == 0);
    CHECK(noop.out.find("Nothing to be done for 'all'") != std::string::npos);
    auto runs = cc.take();
    CHECK(runs.compiled.empty());
    CHECK(runs.links == 0);
    auto fetched = cas_gets(since(nginx, before_make));

    // What make read are the depfiles; the objects and the program it only stat()ed.
    std::set<std::string> depfiles;
    std::set<std::string> outputs;
    for (const auto& entry : fs::directory_iterator(mountpoint / "build")) {
        std::string bytes = read_file(entry.path());
        (entry.path().extension() == ".d" ? depfiles : outputs).insert(ObjectId::of(bytes).hex());
    }
    CHECK(depfiles.size() == sources.size());
    CHECK(fetched == depfiles);
    for (const auto& id : outputs) {
        CHECK_FALSE(fetched.contains(id));
    }

    SECTION("one changed source: the build fetches what it reads, and links") {
        b.unmount();
        write_file(y / "src/u3.c", read_file(y / "src/u3.c") + "/* changed on B */\n");
        b.mount();
        auto rebuilt = make_in(mountpoint, cc);
        INFO(rebuilt.out << rebuilt.err);
        REQUIRE(rebuilt.status == 0);
        auto rebuilt_runs = cc.take();
        CHECK(rebuilt_runs.compiled == std::multiset<std::string>{"src/u3.c"});
        CHECK(rebuilt_runs.links == 1);
        auto ran = run({(mountpoint / "build" / "app").string()});
        CHECK(ran.status == 0);
    }
}

namespace {

std::set<std::string> pooled_objects(const fs::path& store) {
    std::set<std::string> ids;
    for (const auto& entry : fs::recursive_directory_iterator(store / "objects")) {
        if (entry.is_regular_file()) {
            ids.insert(entry.path().parent_path().filename().string() +
                       entry.path().filename().string());
        }
    }
    return ids;
}

std::string id_of(int i) {
    return ObjectId::of(content_of(i)).hex();
}

}  // namespace

TEST_CASE("remote gc: pooled objects the remote holds go least recently read first, and come back",
          "[fuse]") {
    NginxServer nginx;
    TempDir tmp;
    auto b = tmp / "b";
    pull_five_files(tmp / "a", b, tmp / "mnt", nginx.url());
    // A push makes the remote the origin of a store that had none.
    CHECK(read_file(tmp / "a" / "remote-origin") == nginx.url() + "\n");
    {
        Mount m(b, tmp / "mnt");
        for (int i = 0; i < 5; ++i) {
            REQUIRE(read_outcome(m / ("f" + std::to_string(i))).bytes == content_of(i));
        }
        m.unmount();
        m.mount();  // a later mount reads f3 and f4 only: the others were read longer ago
        CHECK(read_outcome(m / "f3").bytes == content_of(3));
        CHECK(read_outcome(m / "f4").bytes == content_of(4));
        m.unmount();
    }
    REQUIRE(pooled_objects(b).size() == 5);
    auto two = std::to_string(content_of(3).size() + content_of(4).size());

    auto dry = run_cli({"gc", "--store", b.string(), "--max-size", two, "--dry-run"});
    require_ok(dry, "fbfs gc --dry-run");
    CHECK(dry.out.find("would drop 3 pooled objects") != std::string::npos);
    CHECK(pooled_objects(b).size() == 5);

    auto gc = run_cli({"gc", "--store", b.string(), "--max-size", two});
    require_ok(gc, "fbfs gc");
    CHECK(gc.out.find("dropped 3 pooled objects") != std::string::npos);
    CHECK(gc.out.find("dropped volume") == std::string::npos);
    CHECK(pooled_objects(b) == std::set<std::string>{id_of(3), id_of(4)});
    auto verified = run_cli({"verify", "--store", b.string()});
    CHECK(verified.status == 0);
    CHECK(verified.out.find("3 objects remote, not fetched yet") != std::string::npos);

    SECTION("a pack of the collected store fetches what it lacks from the origin") {
        auto pack = tmp / "b.pack";
        require_ok(run_cli({"pack", "--store", b.string(), "-o", pack.string()}), "fbfs pack");
        CHECK(pooled_objects(b).size() == 5);
        require_ok(run_cli({"unpack", "--store", (tmp / "c").string(), pack.string()}),
                   "fbfs unpack");
        auto digest = [](const fs::path& store) {
            return run_cli({"stat", "--digest", "--store", store.string()}).out;
        };
        CHECK(digest(tmp / "c") == digest(b));
        CHECK(pooled_objects(tmp / "c").size() == 5);
    }
    SECTION("an object the server evicted stays in the pool") {
        fs::remove(nginx.root() / "cache" / "cas" / id_of(3));
        auto again =
            run_cli({"gc", "--store", b.string(), "--max-size", "0", "--keep", "default"});
        require_ok(again, "fbfs gc --max-size 0");
        CHECK(again.out.find("dropped 1 pooled objects") != std::string::npos);
        CHECK(again.out.find("kept 1 objects the remote no longer has") != std::string::npos);
        CHECK(pooled_objects(b) == std::set<std::string>{id_of(3)});
    }
    SECTION("a mount fetches the dropped objects again") {
        Mount m(b, tmp / "mnt");
        for (int i = 0; i < 5; ++i) {
            CHECK(read_outcome(m / ("f" + std::to_string(i))).bytes == content_of(i));
        }
        CHECK(pooled_objects(b).size() == 5);

        // While the volume is mounted, gc leaves its objects alone.
        auto busy = run_cli({"gc", "--store", b.string(), "--max-size", "0"});
        require_ok(busy, "fbfs gc while mounted");
        CHECK(busy.out.find("pooled objects") == std::string::npos);
        CHECK(pooled_objects(b).size() == 5);
        m.unmount();
    }
    SECTION("with the remote unreachable, gc drops no pooled object and says why") {
        auto store = b.string();
        {
            std::ofstream origin(b / "remote-origin");
            origin << "http://127.0.0.1:1/cache\n";  // nothing listens on port 1
        }
        RunOptions quick;
        quick.env["FBFS_REMOTE_TIMEOUT"] = "1";
        auto down = run_cli({"gc", "--store", store, "--max-size", "0", "--keep", "default"}, quick);
        CHECK(down.status == 0);
        CHECK(down.err.find("dropped no pooled object: cannot ask the remote") !=
              std::string::npos);
        CHECK(pooled_objects(b).size() == 2);
    }
}
