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
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "store/base/object_id.h"
#include "tests/support/http_servers.h"
#include "tests/support/make_project.h"
#include "tests/support/mount.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
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
    push_five_files(tmp / "a", tmp / "mnt", nginx.url());
    require_ok(run_cli({"pull", "--store", (tmp / "b").string(), "--remote", nginx.url(), "--key",
                        "main"}),
               "fbfs pull");
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
