// The crash campaign, part 4: the disk under the store fills up in the middle of a parallel
// build. The store lives on a small tmpfs that the test mounts (and unmounts on every way out).
// What is promised (docs/RELIABILITY.md): writes through the mount fail with ENOSPC, not
// another error; every file closed before that keeps its bytes; the store stays consistent
// (`fbfs verify` clean); and once space is freed — by deleting files through the mount, which
// works on the full disk, or by deleting something else on it — writing, closing, unmounting,
// mounting again and reading back all work, and the next mount leaves no temp file behind.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <chrono>
#include <thread>

#include "store/base/object_id.h"
#include "tests/support/mount.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/torture/torture.h"

namespace fbfs::test {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t k_disk_mib = 48;
constexpr int k_jobs = 4;

// A tmpfs of `mib` MiB mounted at `path` for the test; unmounted on destruction (detached if
// something still holds it). Throws if it cannot be mounted.
class Tmpfs {
public:
    Tmpfs(fs::path path, std::size_t mib) : m_path(std::move(path)) {
        fs::create_directories(m_path);
        std::string options = "size=" + std::to_string(mib) + "m,mode=0755";
        if (::mount("fbfs-torture", m_path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                    options.c_str()) != 0) {
            throw sys_error("mount tmpfs on " + m_path.string());
        }
    }
    ~Tmpfs() {
        if (::umount2(m_path.c_str(), 0) != 0) {
            ::umount2(m_path.c_str(), MNT_DETACH);
        }
    }
    Tmpfs(const Tmpfs&) = delete;
    Tmpfs& operator=(const Tmpfs&) = delete;

    const fs::path& path() const { return m_path; }

private:
    fs::path m_path;
};

std::string random_bytes(std::mt19937_64& random, std::size_t size) {
    std::string out(size, '\0');
    for (std::size_t i = 0; i < size; i += 8) {
        std::uint64_t word = random();
        std::memcpy(out.data() + i, &word, std::min<std::size_t>(8, size - i));
    }
    return out;
}

// The SHA-256 and size of `bytes`, for messages a person can read.
std::string digest_of(const std::string& bytes) {
    return ObjectId::of(bytes).hex() + " (" + std::to_string(bytes.size()) + " bytes)";
}

// Writes `content` to a new file at `path` and closes it: 0, or the errno of the call that
// failed.
int write_new(const fs::path& path, const std::string& content) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        return errno;
    }
    for (std::size_t at = 0; at < content.size();) {
        ssize_t n =
            ::write(fd, content.data() + at, std::min<std::size_t>(content.size() - at, 256 << 10));
        if (n < 0) {
            int error = errno;
            ::close(fd);
            return error;
        }
        at += static_cast<std::size_t>(n);
    }
    return ::close(fd) == 0 ? 0 : errno;
}

// What the build did: the files it closed, and the files whose writing failed, with the error.
struct Build {
    std::mutex mutex;
    std::map<fs::path, std::string> closed;
    std::vector<std::pair<fs::path, int>> failed;
};

// `k_jobs` threads write objects of 0.5 to 3 MiB (or exactly `size` bytes) into `out` until each
// meets a failure or has written `limit` files.
void build_until_full(const fs::path& out, std::uint64_t seed, Build& build, int limit = 200,
                      std::size_t size = 0) {
    fs::create_directories(out);
    std::vector<std::thread> jobs;
    for (int j = 0; j < k_jobs; ++j) {
        jobs.emplace_back([&, j] {
            std::mt19937_64 random(seed + static_cast<std::uint64_t>(j));
            for (int i = 0; i < limit; ++i) {
                auto path = out / ("job" + std::to_string(j) + "-" + std::to_string(i) + ".o");
                std::string content =
                    random_bytes(random, size != 0 ? size : (512 << 10) + random() % (5 << 19));
                int error = write_new(path, content);
                std::lock_guard lock(build.mutex);
                if (error != 0) {
                    build.failed.emplace_back(path, error);
                    return;
                }
                build.closed.emplace(path, std::move(content));
            }
        });
    }
    for (auto& job : jobs) {
        job.join();
    }
}

// Every file the build closed holds its bytes. A file whose writing failed holds, once the
// store is mounted again (`remounted`), what it held at its last close: nothing, as it was new.
// Until then the kernel may still show the pages it cached for it.
void check_files(const Build& build, bool remounted) {
    for (const auto& [path, content] : build.closed) {
        INFO(path);
        CHECK(digest_of(read_path(path)) == digest_of(content));
    }
    for (const auto& [path, error] : build.failed) {
        INFO(path << " failed with " << std::strerror(error));
        if (remounted && stat_outcome(path) == "ok") {
            CHECK(stat_of(path).st_size == 0);
        }
    }
}

// Appends zeros to `path` until the disk under it is full.
void fill_disk(const fs::path& path) {
    auto fd = open_fd(path, O_WRONLY | O_CREAT | O_APPEND);
    std::string chunk(1 << 16, '\0');
    while (::write(fd.get(), chunk.data(), chunk.size()) > 0) {
    }
    INFO("filling " << path);
    REQUIRE(errno == ENOSPC);
}

// Free bytes on the filesystem under `path`.
std::uint64_t free_bytes(const fs::path& path) {
    struct statvfs st {};
    REQUIRE(::statvfs(path.c_str(), &st) == 0);
    return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

}  // namespace

TEST_CASE(
    "a disk that fills mid-build gives ENOSPC, keeps the store whole, and works again "
    "once space is freed",
    "[fuse][torture]") {
    require_root();
    std::uint64_t seed = base_seed();
    INFO("FBFS_TORTURE_SEED=" << seed);
    TempDir tmp;
    Tmpfs disk(tmp / "disk", k_disk_mib);
    auto store = disk.path() / "store";
    auto ballast = disk.path() / "ballast";
    auto mountpoint = tmp / "mnt";
    fs::create_directories(mountpoint);
    write_file(ballast, std::string(8 << 20, 'b'));  // something else on the disk
    MountpointGuard guard(mountpoint);
    auto mounted = run_cli({"mount", "--store", store.string(), mountpoint.string()});
    INFO(mounted.err);
    REQUIRE(mounted.status == 0);

    Build build;
    build_until_full(mountpoint / "out", seed, build);
    INFO(build.closed.size() << " files closed before the disk was full");
    REQUIRE(build.failed.size() == k_jobs);  // each job stopped at a failure, none ran out
    for (const auto& [path, error] : build.failed) {
        INFO(path << " failed with " << std::strerror(error));
        CHECK(error == ENOSPC);
    }
    CHECK(build.closed.size() > 4);
    check_files(build, false);
    CHECK(verify_problems(store) == "");

    SECTION("deleting files through the mount works on the full disk and frees space") {
        std::size_t removed = 0;
        for (auto it = build.closed.begin(); it != build.closed.end() && removed < 8;) {
            INFO("unlink " << it->first);
            REQUIRE(outcome(::unlink(it->first.c_str())) == "ok");
            it = build.closed.erase(it);
            ++removed;
        }
        for (const auto& [path, error] : build.failed) {
            ::unlink(path.c_str());  // whatever is left of them
        }
        build.failed.clear();
    }
    SECTION("deleting something else on the disk frees space") {
        REQUIRE(::unlink(ballast.c_str()) == 0);
    }

    // Space again: a build writes, closes, syncs; it all survives an unmount.
    Build more;
    build_until_full(mountpoint / "more", seed + 100, more, 2, 256 << 10);
    for (const auto& [path, error] : more.failed) {
        FAIL_CHECK("after freeing space, writing " << path << " failed: " << std::strerror(error));
    }
    REQUIRE(more.failed.empty());
    {
        auto fd = open_fd(mountpoint / "more" / "synced", O_WRONLY | O_CREAT | O_TRUNC);
        write_all(fd.get(), "fsync works again\n");
        CHECK(::fsync(fd.get()) == 0);
    }
    auto umount = run_cli({"umount", mountpoint.string()});
    INFO(umount.err);
    REQUIRE(umount.status == 0);
    CHECK(verify_problems(store) == "");
    mounted = run_cli({"mount", "--store", store.string(), mountpoint.string()});
    INFO(mounted.err);
    REQUIRE(mounted.status == 0);
    CHECK(names_in_dir(store / "tmp").empty());
    check_files(build, true);
    check_files(more, true);
    CHECK(read_path(mountpoint / "more" / "synced") == "fsync works again\n");
    REQUIRE(run_cli({"umount", mountpoint.string()}).status == 0);
    CHECK(verify_problems(store) == "");
}

TEST_CASE(
    "on a disk something else filled, deleting files through the mount works and frees "
    "space, and the store mounts again",
    "[fuse][torture]") {
    require_root();
    std::uint64_t seed = base_seed();
    INFO("FBFS_TORTURE_SEED=" << seed);
    TempDir tmp;
    Tmpfs disk(tmp / "disk", k_disk_mib);
    auto store = disk.path() / "store";
    auto ballast = disk.path() / "ballast";
    auto mountpoint = tmp / "mnt";
    fs::create_directories(mountpoint);
    MountpointGuard guard(mountpoint);
    auto mounted = run_cli({"mount", "--store", store.string(), mountpoint.string()});
    INFO(mounted.err);
    REQUIRE(mounted.status == 0);
    Build build;
    fs::create_directories(mountpoint / "out");
    std::mt19937_64 random(seed);
    for (int i = 0; i < 10; ++i) {
        auto path = mountpoint / "out" / ("f" + std::to_string(i));
        auto content = random_bytes(random, 2 << 20);
        REQUIRE(write_new(path, content) == 0);
        build.closed.emplace(path, content);
    }

    fill_disk(ballast);
    auto full = free_bytes(disk.path());
    for (int i = 0; i < 3; ++i) {
        auto victim = build.closed.begin()->first;
        INFO("unlink " << victim << " through the mount on the full disk");
        CHECK(outcome(::unlink(victim.c_str())) == "ok");
        build.closed.erase(victim);
    }
    // Their objects go once the kernel forgets the unlinked inodes, which it does on its own
    // time after the unlinks return: wait for that, 10 s at most.
    for (int tries = 0; tries < 100 && free_bytes(disk.path()) < full + (2 << 20); ++tries) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(free_bytes(disk.path()) >= full + (2 << 20));  // their objects went
    write_file(mountpoint / "after", "written after the deletes\n");
    REQUIRE(run_cli({"umount", mountpoint.string()}).status == 0);

    fill_disk(ballast);
    mounted = run_cli({"mount", "--store", store.string(), mountpoint.string()});
    INFO("mounting on the full disk: " << mounted.err);
    REQUIRE(mounted.status == 0);
    check_files(build, true);
    CHECK(read_path(mountpoint / "after") == "written after the deletes\n");
    auto victim = build.closed.begin()->first;
    INFO("unlink " << victim << " through a mount made on the full disk");
    CHECK(outcome(::unlink(victim.c_str())) == "ok");
    build.closed.erase(victim);
    REQUIRE(run_cli({"umount", mountpoint.string()}).status == 0);
    CHECK(verify_problems(store) == "");
    CHECK(names_in_dir(store / "tmp").empty());
}

}  // namespace fbfs::test
