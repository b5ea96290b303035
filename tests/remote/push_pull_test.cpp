// fbfs push and fbfs pull as runners use them, against real nginx and the misbehaving server:
// what moves over the wire (from nginx's access log), what the store holds afterwards, and every
// refusal as one line "fbfs: ...", exit status 1, with the store left as it was.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "store/meta/store.h"
#include "store/meta/volume_tree.h"
#include "tests/support/fetch_temps.h"
#include "tests/support/http_servers.h"
#include "tests/support/must.h"
#include "tests/support/nobody.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/support/volume_builder.h"

namespace fs = std::filesystem;
using namespace fbfs;
using fbfs::test::BadServer;
using fbfs::test::check_refused;
using fbfs::test::LoggedRequest;
using fbfs::test::must;
using fbfs::test::NginxServer;
using fbfs::test::run_cli;
using fbfs::test::RunOptions;
using fbfs::test::RunResult;
const auto as_nobody = fbfs::test::run_fbfs_as_nobody;
using fbfs::test::TempDir;
using fbfs::test::VolumeBuilder;

namespace {

// Volume `name` in the store at `root` (created if missing): a directory with `files` files of
// distinct content, two files with the same bytes, an empty file and a symlink. Returns the ids.
std::vector<ObjectId> add_volume(const fs::path& root, const std::string& name, int files) {
    VolumeBuilder volume(root, name);
    auto dir = volume.add(k_root_inode, "obj", S_IFDIR | 0755);
    for (int i = 0; i < files; ++i) {
        volume.add(dir, "f" + std::to_string(i) + ".o", S_IFREG | 0644,
                   name + " object " + std::to_string(i) + std::string(1000 + 37 * i, 'z'));
    }
    volume.add(k_root_inode, "same-a", S_IFREG | 0644, "same bytes\n");
    volume.add(k_root_inode, "same-b", S_IFREG | 0644, "same bytes\n");
    volume.add(k_root_inode, "empty", S_IFREG | 0644);
    volume.add(k_root_inode, "link", S_IFLNK | 0777, "obj/f0.o");
    return volume.objects();
}

std::string digest(const fs::path& store) {
    auto result = run_cli({"stat", "--digest", "--store", store.string()});
    REQUIRE(result.status == 0);
    return result.out;
}

std::size_t count(const std::vector<LoggedRequest>& requests, const std::string& method,
                  const std::string& under = "") {
    std::size_t n = 0;
    for (const auto& r : requests) {
        n += r.method == method && r.path.find(under) != std::string::npos ? 1 : 0;
    }
    return n;
}

std::size_t objects_in(const fs::path& store) {
    std::size_t n = 0;
    if (!fs::exists(store / "objects")) {
        return 0;
    }
    for (const auto& entry : fs::recursive_directory_iterator(store / "objects")) {
        n += entry.is_regular_file() ? 1 : 0;
    }
    return n;
}

// Volume `name` in the store at `root`: `files` files of `size` distinct bytes each.
void add_big_volume(const fs::path& root, const std::string& name, int files, std::size_t size) {
    auto store = must(Store::open(root, Store::Mode::create_if_missing));
    auto tree = must(VolumeTree::open(*store, name, ::geteuid(), ::getegid()));
    for (int i = 0; i < files; ++i) {
        std::string content(size, '\0');
        for (std::size_t at = 0; at < size; ++at) {
            content[at] = static_cast<char>((at * 2654435761u + static_cast<std::size_t>(i)) >> 7);
        }
        InodeRecord r;
        r.mode = S_IFREG | 0644;
        r.uid = ::geteuid();
        r.gid = ::getegid();
        r.object = must(store->pool().put_bytes(content)).id;
        r.size = size;
        must(tree.create(k_root_inode, "big" + std::to_string(i), r));
    }
}

// A tmpfs of `mib` MiB mounted at `path` for one test; unmounted on destruction (detached if
// something still holds it). Throws if it cannot be mounted (it needs root).
class Tmpfs {
public:
    Tmpfs(fs::path path, int mib) : m_path(std::move(path)) {
        fs::create_directories(m_path);
        std::string options = "size=" + std::to_string(mib) + "m,mode=0755";
        if (::mount("fbfs-test", m_path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) !=
            0) {
            throw std::runtime_error("cannot mount a tmpfs on " + m_path.string() + ": " +
                                     std::strerror(errno) + " (the test needs root)");
        }
    }
    ~Tmpfs() {
        if (::umount2(m_path.c_str(), 0) != 0) {
            ::umount2(m_path.c_str(), MNT_DETACH);
        }
    }
    Tmpfs(const Tmpfs&) = delete;
    Tmpfs& operator=(const Tmpfs&) = delete;

private:
    fs::path m_path;
};

std::size_t files_in(const fs::path& dir) {
    std::size_t n = 0;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        n += entry.is_regular_file() ? 1 : 0;
    }
    return n;
}

// Sets attribute `name` of the root directory of `volume` in the store at `root`.
void set_root_xattr(const fs::path& root, const std::string& volume, const std::string& name,
                    const std::string& value) {
    auto store = must(Store::open(root, Store::Mode::open_existing));
    auto tree = must(VolumeTree::open(*store, volume, ::geteuid(), ::getegid()));
    must(tree.set_xattr(k_root_inode, name, value, XattrMode::any));
}

// Pushes the store at `root` to `nginx` as "main"; the push must succeed.
void push_main(const fs::path& root, const NginxServer& nginx) {
    auto pushed =
        run_cli({"push", "--store", root.string(), "--remote", nginx.url(), "--key", "main"});
    INFO(pushed.err);
    REQUIRE(pushed.status == 0);
}

// Quick faults: one second of silence is a timeout.
RunOptions quick() {
    RunOptions options;
    options.env["FBFS_REMOTE_TIMEOUT"] = "1";
    return options;
}

}  // namespace

TEST_CASE("push then pull --eager on another store gives the same volumes", "[remote]") {
    NginxServer nginx;
    TempDir a;
    TempDir b;
    add_volume(a / "store", "build", 20);
    add_volume(a / "store", "tools", 3);

    auto pushed = run_cli(
        {"push", "--store", (a / "store").string(), "--remote", nginx.url(), "--key", "main"});
    INFO(pushed.err);
    REQUIRE(pushed.status == 0);
    CHECK(pushed.err.find("fbfs push: 2 volumes, 24 objects (24 uploaded") != std::string::npos);
    auto log = nginx.requests();
    CHECK(count(log, "HEAD", "/cas/") == 24);
    CHECK(count(log, "PUT", "/cas/") == 25);  // the objects and the manifest
    CHECK(count(log, "PUT", "/ac/") == 1);
    CHECK(fs::exists(nginx.root() / "cache" / "ac" / ObjectId::of(std::string_view("main")).hex()));

    auto before = nginx.requests().size();
    auto pulled = run_cli({"pull", "--store", (b / "store").string(), "--remote", nginx.url(),
                           "--key", "main", "--eager"});
    INFO(pulled.err);
    REQUIRE(pulled.status == 0);
    CHECK(pulled.err.find("fbfs pull: 2 volumes, 24 objects (24 fetched") != std::string::npos);
    CHECK(digest(b / "store") == digest(a / "store"));
    CHECK(objects_in(b / "store") == 24);
    auto verified = run_cli({"verify", "--store", (b / "store").string()});
    CHECK(verified.status == 0);
    auto all = nginx.requests();
    auto pull_log =
        std::vector<LoggedRequest>(all.begin() + static_cast<std::ptrdiff_t>(before), all.end());
    CHECK(count(pull_log, "GET", "/cas/") == 25);
    CHECK(count(pull_log, "GET", "/ac/") == 1);
    CHECK(count(pull_log, "PUT") == 0);

    SECTION("a second push uploads nothing but the manifest and the key") {
        auto again = run_cli(
            {"push", "--store", (a / "store").string(), "--remote", nginx.url(), "--key", "main"});
        REQUIRE(again.status == 0);
        CHECK(again.err.find("(0 uploaded") != std::string::npos);
    }
}

TEST_CASE("pull removes the temp files of fetches that were killed, and no other", "[remote]") {
    NginxServer nginx;
    TempDir a;
    TempDir b;
    add_volume(a / "store", "build", 3);
    push_main(a / "store", nginx);
    std::vector<std::string> pull{
        "pull", "--store", (b / "store").string(), "--remote", nginx.url(), "--key", "main"};
    REQUIRE(run_cli(pull).status == 0);
    test::PlantedFetchTemps planted(b / "store" / "tmp");

    pull.push_back("--eager");
    auto pulled = run_cli(pull);
    INFO(pulled.err);
    REQUIRE(pulled.status == 0);
    CHECK_FALSE(fs::exists(planted.abandoned));
    CHECK(fs::exists(planted.locked));
    CHECK(fs::exists(planted.live));
    CHECK(digest(b / "store") == digest(a / "store"));
}

TEST_CASE("extended attributes travel through push and pull", "[remote]") {
    NginxServer nginx;
    TempDir a;
    TempDir b;
    add_volume(a / "store", "build", 2);
    set_root_xattr(a / "store", "build", "user.fbfs.test", "kept");
    REQUIRE(
        run_cli({"push", "--store", (a / "store").string(), "--remote", nginx.url(), "--key", "x"})
            .status == 0);
    auto pulled =
        run_cli({"pull", "--store", (b / "store").string(), "--remote", nginx.url(), "--key", "x"});
    INFO(pulled.err);
    REQUIRE(pulled.status == 0);
    auto store = must(Store::open(b / "store", Store::Mode::open_existing));
    auto tree = must(VolumeTree::open(*store, "build", ::geteuid(), ::getegid()));
    auto attributes = must(tree.xattrs(k_root_inode));
    REQUIRE(attributes.size() == 1);
    CHECK(attributes[0].value == "kept");
}

TEST_CASE("pull as a user other than root refuses trusted. and security. attributes",
          "[remote]") {
    // Through a mount only a privileged caller could have set them (ext4's rule), as for unpack.
    NginxServer nginx;
    TempDir a;
    add_volume(a / "store", "app", 2);
    set_root_xattr(a / "store", "app", "trusted.origin", "ci");
    push_main(a / "store", nginx);
    TempDir home;
    fs::permissions(home.path(), fs::perms::others_all, fs::perm_options::add);
    auto store = home / "store";
    fs::create_directory(store);
    REQUIRE(::chown(store.c_str(), 65534, 65534) == 0);
    for (const char* how : {"--eager", "--store"}) {
        std::vector<std::string> args{"pull", "--store", store.string(), "--remote", nginx.url(),
                                      "--key", "main"};
        if (std::string(how) == "--eager") {
            args.push_back(how);
        }
        auto before = nginx.requests().size();
        check_refused(as_nobody(args),
                      {"'app'", "'trusted.origin'", "only root", "nothing was pulled"});
        auto all = nginx.requests();
        auto log = std::vector<LoggedRequest>(all.begin() + static_cast<std::ptrdiff_t>(before),
                                              all.end());
        CHECK(count(log, "GET", "/cas/") == 1);  // the manifest, and no object
        CHECK(fs::is_empty(store));
    }
    auto as_root = run_cli({"pull", "--store", (a / "root").string(), "--remote", nginx.url(),
                            "--key", "main"});
    INFO(as_root.err);
    CHECK(as_root.status == 0);
}

TEST_CASE("pull without --eager moves only the manifest and records where objects are",
          "[remote]") {
    NginxServer nginx;
    TempDir a;
    TempDir b;
    add_volume(a / "store", "build", 10);
    push_main(a / "store", nginx);
    auto before = nginx.requests().size();
    auto pulled = run_cli(
        {"pull", "--store", (b / "store").string(), "--remote", nginx.url(), "--key", "main"});
    INFO(pulled.err);
    REQUIRE(pulled.status == 0);
    CHECK(pulled.err.find("11 remote, fetched on first read") != std::string::npos);
    auto log = nginx.requests();
    REQUIRE(log.size() == before + 2);
    CHECK(log[before].method == "GET");
    CHECK(log[before].path.find("/cache/ac/") == 0);
    CHECK(log[before + 1].path.find("/cache/cas/") == 0);
    CHECK(objects_in(b / "store") == 0);
    CHECK(digest(b / "store") == digest(a / "store"));
    CHECK(test::read_file(b / "store" / "remote-origin") == nginx.url() + "\n");

    SECTION("the lazily pulled store pushes back to its cache without its objects") {
        auto pushed = run_cli(
            {"push", "--store", (b / "store").string(), "--remote", nginx.url(), "--key", "again"});
        INFO(pushed.err);
        REQUIRE(pushed.status == 0);
        CHECK(pushed.err.find("(0 uploaded") != std::string::npos);
    }
    SECTION("but not to another cache, which lacks them: the object is named") {
        NginxServer other;
        auto pushed = run_cli({"push", "--store", (b / "store").string(), "--remote", other.url()});
        check_refused(pushed, {"lacks object", "pulled lazily from " + nginx.url(), "--eager"});
    }
}

TEST_CASE("pull refuses what it cannot install, and leaves the store as it was", "[remote]") {
    NginxServer nginx;
    TempDir a;
    TempDir b;
    add_volume(a / "store", "build", 4);
    push_main(a / "store", nginx);

    SECTION("an unknown key") {
        auto pulled = run_cli(
            {"pull", "--store", (b / "store").string(), "--remote", nginx.url(), "--key", "nope"});
        check_refused(pulled, {"no entry named 'nope'", "fbfs push"});
        CHECK_FALSE(fs::exists(b / "store"));
    }
    SECTION("no server there") {
        std::string url = "http://127.0.0.1:" + std::to_string(test::free_port()) + "/cache";
        auto pulled =
            run_cli({"pull", "--store", (b / "store").string(), "--remote", url, "--key", "main"});
        check_refused(pulled, {"connection refused", "is the cache server running"});
        CHECK_FALSE(fs::exists(b / "store"));
    }
    SECTION("no remote at all") {
        auto pulled = run_cli({"pull", "--store", (b / "store").string(), "--key", "main"});
        check_refused(pulled, {"no remote cache given", "--remote URL"});
    }
    SECTION("a manifest that is damaged on the server is refused by hash") {
        for (const auto& entry : fs::directory_iterator(nginx.root() / "cache" / "cas")) {
            if (test::read_file(entry.path()).starts_with("FBFSMNFT")) {
                std::string bytes = test::read_file(entry.path());
                bytes[bytes.size() / 2] ^= 1;
                test::write_file(entry.path(), bytes);
            }
        }
        auto pulled = run_cli(
            {"pull", "--store", (b / "store").string(), "--remote", nginx.url(), "--key", "main"});
        check_refused(pulled, {"refused"});
        CHECK_FALSE(fs::exists(b / "store"));
    }
    SECTION("an existing store keeps its volumes when an eager pull fails") {
        add_volume(b / "store", "build", 2);
        std::string was = digest(b / "store");
        auto objects_before = objects_in(b / "store");
        // Take away from the server one object that store b lacks.
        int removed = 0;
        for (const auto& entry : fs::directory_iterator(nginx.root() / "cache" / "cas")) {
            if (test::read_file(entry.path()).starts_with("build object 3")) {
                fs::remove(entry.path());
                ++removed;
            }
        }
        REQUIRE(removed == 1);
        auto pulled = run_cli({"pull", "--store", (b / "store").string(), "--remote", nginx.url(),
                               "--key", "main", "--eager"});
        check_refused(pulled, {"404 Not Found"});
        CHECK(digest(b / "store") == was);
        CHECK(objects_in(b / "store") == objects_before);
    }
}

TEST_CASE("over https the server's certificate is verified, and its CA trusted by FBFS_REMOTE_CA",
          "[remote]") {
    test::SelfSignedCertificate certificate;
    NginxServer nginx(NginxServer::Auth::none, &certificate);
    TempDir a;
    TempDir b;
    add_volume(a / "store", "build", 3);
    add_volume(b / "store", "own", 2);
    std::string a_before = digest(a / "store");
    std::string b_before = digest(b / "store");
    auto push = [&](const RunOptions& options) {
        return run_cli({"push", "--store", (a / "store").string(), "--remote", nginx.https_url(),
                        "--key", "main"},
                       options);
    };
    auto pull = [&](const fs::path& store, const RunOptions& options) {
        return run_cli({"pull", "--store", store.string(), "--remote", nginx.https_url(), "--key",
                        "main", "--eager"},
                       options);
    };

    SECTION("not trusted: push and pull refuse in one line naming it, and nothing changes") {
        check_refused(push(quick()), {"TLS certificate verification failed", "self-signed",
                                      "$FBFS_REMOTE_CA=/path/to/ca.pem"});
        CHECK(nginx.requests().empty());
        CHECK(digest(a / "store") == a_before);

        RunOptions trusted = quick();
        trusted.env["FBFS_REMOTE_CA"] = certificate.certificate().string();
        REQUIRE(push(trusted).status == 0);
        auto requests = nginx.requests().size();
        check_refused(pull(b / "store", quick()),
                      {"TLS certificate verification failed", "$FBFS_REMOTE_CA"});
        CHECK(digest(b / "store") == b_before);
        check_refused(pull(b / "new", quick()), {"TLS certificate verification failed"});
        CHECK_FALSE(fs::exists(b / "new"));
        CHECK(nginx.requests().size() == requests);
    }
    SECTION("trusted through $FBFS_REMOTE_CA: push and pull go through") {
        RunOptions trusted = quick();
        trusted.env["FBFS_REMOTE_CA"] = certificate.certificate().string();
        auto pushed = push(trusted);
        INFO(pushed.err);
        REQUIRE(pushed.status == 0);
        CHECK(count(nginx.requests(), "PUT", "/ac/") == 1);
        auto pulled = pull(b / "new", trusted);
        INFO(pulled.err);
        REQUIRE(pulled.status == 0);
        CHECK(digest(b / "new") == a_before);
    }
    SECTION("$FBFS_REMOTE_CA naming no file is refused before any request") {
        RunOptions wrong = quick();
        wrong.env["FBFS_REMOTE_CA"] = (a / "no-such-ca.pem").string();
        check_refused(push(wrong), {"$FBFS_REMOTE_CA", "cannot be read", "PEM file"});
        CHECK(nginx.requests().empty());
    }
    SECTION("another CA does not make it trusted") {
        test::SelfSignedCertificate other;
        RunOptions wrong = quick();
        wrong.env["FBFS_REMOTE_CA"] = other.certificate().string();
        check_refused(push(wrong), {"TLS certificate verification failed"});
        CHECK(digest(a / "store") == a_before);
    }
}

TEST_CASE("pull --eager onto a full disk is one line naming no space, and the store is as it was",
          "[remote]") {
    NginxServer nginx;
    TempDir a;
    TempDir b;
    add_big_volume(a / "store", "build", 6, 2 << 20);
    push_main(a / "store", nginx);
    Tmpfs disk(b / "disk", 8);
    add_volume(b / "disk" / "store", "own", 2);
    std::string before = digest(b / "disk" / "store");
    std::size_t objects_before = objects_in(b / "disk" / "store");

    auto pull = [&](const fs::path& store) {
        return run_cli({"pull", "--store", store.string(), "--remote", nginx.url(), "--key", "main",
                        "--eager"},
                       quick());
    };
    check_refused(pull(b / "disk" / "store"),
                  {"No space left on device", b.path().string(), "free space"});
    CHECK(digest(b / "disk" / "store") == before);
    CHECK(objects_in(b / "disk" / "store") == objects_before);
    CHECK(files_in(b / "disk" / "store" / "tmp") == 0);

    SECTION("a store the pull would have made is not left behind") {
        check_refused(pull(b / "disk" / "new"), {"No space left on device", "free space"});
        CHECK_FALSE(fs::exists(b / "disk" / "new"));
    }
}

TEST_CASE("push names an object missing from the store", "[remote]") {
    NginxServer nginx;
    TempDir a;
    auto ids = add_volume(a / "store", "build", 3);
    {
        auto store = must(Store::open(a / "store", Store::Mode::open_existing));
        fs::path object = store->pool().object_path(ids[1]);
        fs::permissions(object.parent_path(), fs::perms::owner_all);
        fs::remove(object);
    }
    auto pushed = run_cli({"push", "--store", (a / "store").string(), "--remote", nginx.url()});
    check_refused(pushed, {ids[1].hex(), "lacks object", "fbfs verify"});
    CHECK(count(nginx.requests(), "PUT", "/ac/") == 0);
}

TEST_CASE("push and pull faults are one line each and never show a password", "[remote]") {
    TempDir a;
    TempDir b;
    add_volume(a / "store", "build", 3);
    auto push_to = [&](const std::string& url, RunOptions options = quick()) {
        return run_cli({"push", "--store", (a / "store").string(), "--remote", url, "--key", "k"},
                       options);
    };
    auto pull_from = [&](const std::string& url) {
        return run_cli(
            {"pull", "--store", (b / "store").string(), "--remote", url, "--key", "k", "--eager"},
            quick());
    };

    SECTION(
        "401 without credentials, 401 with a wrong password (not shown), ok with the right one") {
        NginxServer nginx(NginxServer::Auth::writes);
        check_refused(push_to(nginx.url()), {"401 Unauthorized", "FBFS_REMOTE_HEADER"});
        auto wrong = push_to(nginx.url_with("ci", "p4ssw0rd-wrong"));
        check_refused(wrong, {"401 Unauthorized", "***@127.0.0.1"});
        CHECK(wrong.err.find("p4ssw0rd-wrong") == std::string::npos);
        auto right = push_to(nginx.url_with("ci", "secret"));
        INFO(right.err);
        CHECK(right.status == 0);
        CHECK(right.err.find("secret") == std::string::npos);
        RunOptions header = quick();
        header.env["FBFS_REMOTE_HEADER"] = "Authorization: Basic Y2k6c2VjcmV0";
        CHECK(push_to(nginx.url(), header).status == 0);
    }
    SECTION("507 from a full server") {
        BadServer server("full");
        check_refused(push_to(server.url()), {"507 Insufficient Storage", "disk is full"});
    }
    SECTION("403 Forbidden") {
        BadServer server("forbidden");
        check_refused(push_to(server.url()), {"403 Forbidden", "credentials"});
    }
    SECTION("wrong bytes: refused by hash, nothing kept") {
        BadServer server("wrong-bytes");
        REQUIRE(push_to(server.url()).status == 0);
        check_refused(pull_from(server.url()), {"refused"});
        CHECK_FALSE(fs::exists(b / "store"));
    }
    SECTION("a body cut short") {
        BadServer server("cut-short");
        REQUIRE(push_to(server.url()).status == 0);
        check_refused(pull_from(server.url()), {"cut short"});
        CHECK_FALSE(fs::exists(b / "store"));
    }
    SECTION("a stall past the timeout") {
        BadServer server("stall");
        check_refused(push_to(server.url()), {"timed out: nothing moved for 1 s"});
    }
    SECTION("a 500 on every third request is retried through") {
        BadServer server("flaky");
        RunOptions one = quick();
        one.env["FBFS_REMOTE_PARALLEL"] = "3";
        auto pushed = push_to(server.url(), one);
        INFO(pushed.err);
        REQUIRE(pushed.status == 0);
        auto pulled = run_cli({"pull", "--store", (b / "store").string(), "--remote", server.url(),
                               "--key", "k", "--eager"},
                              one);
        INFO(pulled.err);
        REQUIRE(pulled.status == 0);
        CHECK(digest(b / "store") == digest(a / "store"));
    }
    SECTION("a URL that is not http(s)") {
        check_refused(push_to("ftp://ci:hunter2@host/x"), {"not http:// or https://"});
        CHECK(push_to("ftp://ci:hunter2@host/x").err.find("hunter2") == std::string::npos);
    }
}
