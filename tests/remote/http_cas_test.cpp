// HttpCas against real servers: nginx with WebDAV, and bad_http_server.py for the faults nginx
// will not produce.
#include "store/remote/http_cas.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "store/pool/object_pool.h"
#include "tests/support/http_servers.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using namespace fbfs;
using fbfs::test::BadServer;
using fbfs::test::NginxServer;
using fbfs::test::TempDir;

namespace {

// Quick retries so fault tests take a second, not a minute.
RemoteOptions quick_options() {
    RemoteOptions options;
    options.backoff = std::chrono::milliseconds(20);
    options.attempts = 3;
    options.stall_timeout = std::chrono::seconds(1);
    options.connect_timeout = std::chrono::milliseconds(2000);
    return options;
}

HttpCas open_cas(const std::string& url, RemoteOptions options = quick_options()) {
    auto cas = HttpCas::open(url, std::move(options));
    REQUIRE(cas);
    return std::move(*cas);
}

// `count` distinct small files in `dir`, with their ids.
std::vector<Upload> make_objects(const fs::path& dir, int count) {
    fs::create_directories(dir);
    std::vector<Upload> uploads;
    for (int i = 0; i < count; ++i) {
        std::string bytes = "object " + std::to_string(i) + std::string(100 * i, 'x');
        fs::path path = dir / std::to_string(i);
        test::write_file(path, bytes);
        uploads.push_back({ObjectId::of(bytes), path});
    }
    return uploads;
}

std::vector<ObjectId> ids_of(const std::vector<Upload>& uploads) {
    std::vector<ObjectId> ids;
    for (const auto& upload : uploads) {
        ids.push_back(upload.id);
    }
    return ids;
}

std::size_t files_in(const fs::path& dir) {
    std::size_t count = 0;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        count += entry.is_regular_file() ? 1 : 0;
    }
    return count;
}

// An empty pool in `dir`/store, to fetch into.
ObjectPool empty_pool(const fs::path& dir) {
    fs::create_directories(dir / "store");
    auto pool = ObjectPool::open(dir / "store");
    REQUIRE(pool);
    return std::move(*pool);
}

// What a test against bad_http_server.py starts from: the server misbehaving as `mode`, a client
// of it, and a temp dir.
struct BadServerClient {
    explicit BadServerClient(const std::string& mode, RemoteOptions options = quick_options())
        : server(mode), cas(open_cas(server.url(), std::move(options))) {}

    // `count` objects made in the temp dir and uploaded, which must succeed.
    std::vector<Upload> uploaded(int count) {
        auto uploads = make_objects(tmp / "files", count);
        auto put = cas.upload(uploads);
        INFO((put ? "" : put.error().message));
        REQUIRE(put);
        return uploads;
    }

    BadServer server;
    TempDir tmp;
    HttpCas cas;
};

// An UploadSource giving the file of each of `uploads`, and ENOENT for any other id.
UploadSource source_of(const std::vector<Upload>& uploads) {
    return [&uploads](const ObjectId& id) -> Result<fs::path> {
        for (const auto& upload : uploads) {
            if (upload.id == id) {
                return upload.path;
            }
        }
        return make_error(ENOENT, "no file for " + id.hex());
    };
}

std::size_t connections_of(const std::vector<test::LoggedRequest>& requests) {
    std::set<std::uint64_t> connections;
    for (const auto& request : requests) {
        connections.insert(request.connection);
    }
    return connections.size();
}

}  // namespace

TEST_CASE("RemoteUrl: credentials leave the URL and are never shown", "[remote]") {
    auto url = RemoteUrl::parse("https://ci:s3cr%40t@cache.example:9090/fbfs/");
    REQUIRE(url);
    CHECK(url->base == "https://cache.example:9090/fbfs");
    CHECK(url->user == "ci");
    CHECK(url->password == "s3cr@t");
    CHECK(url->shown == "https://***@cache.example:9090/fbfs");

    auto plain = RemoteUrl::parse("http://127.0.0.1:8080");
    REQUIRE(plain);
    CHECK(plain->shown == "http://127.0.0.1:8080");
    CHECK(plain->user.empty());
}

TEST_CASE("RemoteUrl: anything but an http(s) base URL is refused in one line", "[remote]") {
    for (std::string bad : {"ftp://host/x", "not a url", "http://host/x?y=1", "file:///tmp"}) {
        auto url = RemoteUrl::parse(bad);
        REQUIRE_FALSE(url);
        CHECK(url.error().code == EINVAL);
        CHECK(url.error().message.find('\n') == std::string::npos);
    }
    auto secret = RemoteUrl::parse("ftp://me:hunter2@host/x");
    REQUIRE_FALSE(secret);
    CHECK(secret.error().message.find("hunter2") == std::string::npos);
}

TEST_CASE("HttpCas: objects go up to nginx and come back into a pool, checked", "[remote]") {
    NginxServer nginx;
    TempDir tmp;
    auto uploads = make_objects(tmp / "files", 40);
    auto ids = ids_of(uploads);
    HttpCas cas = open_cas(nginx.url());

    auto lacking = cas.missing(ids);
    REQUIRE(lacking);
    CHECK(*lacking == ids);
    REQUIRE(cas.upload(uploads));
    CHECK(fs::exists(nginx.root() / "cache" / "cas" / ids[3].hex()));
    auto after = cas.missing(ids);
    REQUIRE(after);
    CHECK(after->empty());
    // 120 requests, at most 32 HEADs or 8 PUTs at a time, over connections kept alive between
    // batches: 32 connections at most.
    CHECK(nginx.requests().size() == 120);
    CHECK(connections_of(nginx.requests()) <= 32);

    ObjectPool pool = empty_pool(tmp.path());
    auto fetched = cas.fetch(ids, pool);
    REQUIRE(fetched);
    std::uint64_t total = 0;
    for (const auto& upload : uploads) {
        CHECK(pool.contains(upload.id));
        auto ok = pool.verify(upload.id);
        CHECK((ok && *ok));
        total += fs::file_size(upload.path);
    }
    CHECK(*fetched == total);
    CHECK(files_in(pool.tmp_dir()) == 0);

    SECTION("a second fetch asks the server nothing") {
        auto before = nginx.requests().size();
        auto again = cas.fetch(ids, pool);
        REQUIRE(again);
        CHECK(*again == 0);
        CHECK(nginx.requests().size() == before);
    }
}

TEST_CASE("HttpCas: upload_missing PUTs only what the server lacks, and the contents with it",
          "[remote]") {
    NginxServer nginx;
    TempDir tmp;
    auto uploads = make_objects(tmp / "files", 60);
    auto ids = ids_of(uploads);
    HttpCas cas = open_cas(nginx.url());
    REQUIRE(cas.upload(std::span(uploads).first(20)));
    auto before = nginx.requests().size();
    std::vector<std::string> contents{"a manifest"};
    auto uploaded = cas.upload_missing(ids, source_of(uploads), contents);
    REQUIRE(uploaded);
    std::set<ObjectId> want(ids.begin() + 20, ids.end());
    CHECK(std::set<ObjectId>(uploaded->begin(), uploaded->end()) == want);
    CHECK(uploaded->size() == 40);
    for (const auto& upload : uploads) {
        CHECK(test::read_file(nginx.root() / "cache" / "cas" / upload.id.hex()) ==
              test::read_file(upload.path));
    }
    CHECK(test::read_file(nginx.root() / "cache" / "cas" / ObjectId::of(contents[0]).hex()) ==
          contents[0]);
    auto requests = nginx.requests();
    // 60 HEADs, 40 PUTs of objects, 1 of the contents; over connections kept alive.
    CHECK(requests.size() - before == 101);
    CHECK(connections_of(requests) <= 32);

    SECTION("an object its source cannot give ends the upload with that error") {
        auto more = make_objects(tmp / "more", 65);
        auto lost = more.back().id;
        more.pop_back();
        std::vector<ObjectId> asked = ids_of(more);
        asked.push_back(lost);
        auto failed = cas.upload_missing(asked, source_of(more), {});
        REQUIRE_FALSE(failed);
        CHECK(failed.error().message == "no file for " + lost.hex());
        CHECK_FALSE(fs::exists(nginx.root() / "cache" / "cas" / lost.hex()));
    }
}

TEST_CASE("HttpCas: named entries and contents round-trip, and a missing entry is none",
          "[remote]") {
    NginxServer nginx;
    HttpCas cas = open_cas(nginx.url());
    ObjectId key = ObjectId::of(std::string_view("main"));
    auto none = cas.get_entry(key, 1024);
    REQUIRE(none);
    CHECK_FALSE(none->has_value());

    auto id = cas.put_content("manifest bytes");
    REQUIRE(id);
    REQUIRE(cas.put_entry(key, id->hex()));
    auto entry = cas.get_entry(key, 1024);
    REQUIRE(entry);
    REQUIRE(entry->has_value());
    CHECK(**entry == id->hex());
    auto content = cas.get_content(*id, 1024);
    REQUIRE(content);
    CHECK(*content == "manifest bytes");

    SECTION("an overwrite (nginx answers 204) is accepted") {
        REQUIRE(cas.put_entry(key, "other"));
        auto changed = cas.get_entry(key, 1024);
        REQUIRE(changed);
        CHECK(**changed == "other");
    }
    SECTION("an answer over the limit is refused") {
        auto big = cas.get_content(*id, 4);
        REQUIRE_FALSE(big);
        CHECK(big.error().code == EFBIG);
    }
    SECTION("content the server lacks is 404, named") {
        ObjectId absent = ObjectId::of(std::string_view("never stored"));
        auto got = cas.get_content(absent, 1024);
        REQUIRE_FALSE(got);
        CHECK(got.error().code == ENOENT);
        CHECK(got.error().message.find("404") != std::string::npos);
        CHECK(got.error().message.find(absent.hex()) != std::string::npos);
    }
}

TEST_CASE("HttpCas: a fetch of an object the server lacks stores nothing", "[remote]") {
    NginxServer nginx;
    TempDir tmp;
    auto uploads = make_objects(tmp / "files", 3);
    HttpCas cas = open_cas(nginx.url());
    REQUIRE(cas.upload(std::span(uploads).first(2)));
    ObjectPool pool = empty_pool(tmp.path());
    auto fetched = cas.fetch(ids_of(uploads), pool);
    REQUIRE_FALSE(fetched);
    CHECK(fetched.error().code == ENOENT);
    CHECK(fetched.error().message.find(uploads[2].id.hex()) != std::string::npos);
    CHECK_FALSE(pool.contains(uploads[2].id));
    CHECK(files_in(pool.tmp_dir()) == 0);
}

TEST_CASE("HttpCas: a server that is not there is 'connection refused', after bounded retries",
          "[remote]") {
    int port = test::free_port();
    HttpCas cas = open_cas("http://127.0.0.1:" + std::to_string(port) + "/cache");
    ObjectId id = ObjectId::of(std::string_view("x"));
    auto lacking = cas.missing(std::span(&id, 1));
    REQUIRE_FALSE(lacking);
    CHECK(lacking.error().code == ECONNREFUSED);
    CHECK(lacking.error().message.find("connection refused (3 tries)") != std::string::npos);
    CHECK(lacking.error().message.find('\n') == std::string::npos);
}

TEST_CASE("HttpCas: writes need the credentials nginx asks for, and none is ever shown",
          "[remote]") {
    NginxServer nginx(NginxServer::Auth::writes);
    TempDir tmp;
    auto uploads = make_objects(tmp / "files", 2);

    SECTION("none: 401, with the fix") {
        HttpCas cas = open_cas(nginx.url());
        auto put = cas.upload(uploads);
        REQUIRE_FALSE(put);
        CHECK(put.error().code == EACCES);
        CHECK(put.error().message.find("401 Unauthorized") != std::string::npos);
        CHECK(put.error().message.find("FBFS_REMOTE_HEADER") != std::string::npos);
    }
    SECTION("a wrong password in the URL: refused, the password not shown") {
        HttpCas cas = open_cas(nginx.url_with("ci", "wrong-pass"));
        auto put = cas.upload(uploads);
        REQUIRE_FALSE(put);
        CHECK(put.error().code == EACCES);
        CHECK(put.error().message.find("wrong-pass") == std::string::npos);
        CHECK(put.error().message.find("***@127.0.0.1") != std::string::npos);
    }
    SECTION("the right password in the URL") {
        HttpCas cas = open_cas(nginx.url_with("ci", "secret"));
        REQUIRE(cas.upload(uploads));
        CHECK(fs::exists(nginx.root() / "cache" / "cas" / uploads[1].id.hex()));
    }
    SECTION("a header from $FBFS_REMOTE_HEADER") {
        ::setenv("FBFS_REMOTE_HEADER", "Authorization: Basic Y2k6c2VjcmV0", 1);  // ci:secret
        auto from_env = RemoteOptions::from_environment();
        ::unsetenv("FBFS_REMOTE_HEADER");
        REQUIRE(from_env);
        RemoteOptions options = *from_env;
        options.attempts = 1;
        HttpCas cas = open_cas(nginx.url(), options);
        REQUIRE(cas.upload(uploads));
        CHECK(fs::exists(nginx.root() / "cache" / "cas" / uploads[0].id.hex()));
    }
}

TEST_CASE("HttpCas: 403 Forbidden is named, with the fix", "[remote]") {
    BadServerClient c("forbidden");
    auto put = c.cas.put_content("x");
    REQUIRE_FALSE(put);
    CHECK(put.error().code == EACCES);
    CHECK(put.error().message.find("403 Forbidden") != std::string::npos);
}

TEST_CASE("HttpCas: wrong bytes from the server are refused by hash and never kept", "[remote]") {
    BadServerClient c("wrong-bytes");
    auto uploads = c.uploaded(4);
    ObjectPool pool = empty_pool(c.tmp.path());

    auto fetched = c.cas.fetch(ids_of(uploads), pool);
    REQUIRE_FALSE(fetched);
    CHECK(fetched.error().code == EBADMSG);
    CHECK(fetched.error().message.find("refused") != std::string::npos);
    CHECK(files_in(pool.root() / "objects") == 0);
    CHECK(files_in(pool.tmp_dir()) == 0);

    auto content = c.cas.get_content(uploads[0].id, 1 << 20);
    REQUIRE_FALSE(content);
    CHECK(content.error().code == EBADMSG);
}

TEST_CASE("HttpCas: a 500 on every third request is retried through", "[remote]") {
    BadServerClient c("flaky");
    auto uploads = c.uploaded(12);
    auto lacking = c.cas.missing(ids_of(uploads));
    INFO((lacking ? "" : lacking.error().message));
    REQUIRE(lacking);
    CHECK(lacking->empty());
    ObjectPool pool = empty_pool(c.tmp.path());
    REQUIRE(c.cas.fetch(ids_of(uploads), pool));
    for (const auto& upload : uploads) {
        CHECK(pool.contains(upload.id));
    }
    int errors = 0;
    for (const auto& request : c.server.requests()) {
        errors += request.status == 500 ? 1 : 0;
    }
    CHECK(errors >=
          6);  // 36 requests at least: 12 in third place, a retry skipping at most one each
}

TEST_CASE("HttpCas: a body cut short is named and nothing is kept", "[remote]") {
    BadServerClient c("cut-short");
    auto uploads = c.uploaded(3);
    ObjectPool pool = empty_pool(c.tmp.path());
    auto fetched = c.cas.fetch(ids_of(uploads), pool);
    REQUIRE_FALSE(fetched);
    CHECK(fetched.error().code == EPROTO);
    CHECK(fetched.error().message.find("cut short (3 tries)") != std::string::npos);
    CHECK(files_in(pool.root() / "objects") == 0);
    CHECK(files_in(pool.tmp_dir()) == 0);
}

TEST_CASE("HttpCas: a server that stalls past the timeout is a timeout", "[remote]") {
    RemoteOptions options = quick_options();
    options.attempts = 2;
    BadServerClient c("stall", options);
    ObjectId id = ObjectId::of(std::string_view("x"));
    auto lacking = c.cas.missing(std::span(&id, 1));
    REQUIRE_FALSE(lacking);
    CHECK(lacking.error().code == ETIMEDOUT);
    CHECK(lacking.error().message.find("timed out: nothing moved for 1 s (2 tries)") !=
          std::string::npos);
}

TEST_CASE("HttpCas: 507 from a full server is named, with the fix", "[remote]") {
    BadServerClient c("full");
    auto put = c.cas.upload(make_objects(c.tmp / "files", 2));
    REQUIRE_FALSE(put);
    CHECK(put.error().code == ENOSPC);
    CHECK(put.error().message.find("507 Insufficient Storage") != std::string::npos);
    CHECK(put.error().message.find("disk is full") != std::string::npos);
}
