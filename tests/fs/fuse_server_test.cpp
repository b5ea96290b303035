// fuse_server.cpp through a real mount: what a request that cannot be served does to the mount.
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/mount.h"
#include "tests/support/posix.h"

namespace fs = std::filesystem;
using fbfs::test::MountedStore;

namespace {

// The pid of the daemon serving `mountpoint` (its /proc/mounts source is fbfs:<volume>:<pid>).
pid_t daemon_of(const fs::path& mountpoint) {
    auto mounts = fbfs::test::mounts_at(mountpoint);
    REQUIRE_FALSE(mounts.empty());
    const std::string& source = mounts.back().source;
    return static_cast<pid_t>(std::stol(source.substr(source.rfind(':') + 1)));
}

// The address space `pid` has mapped, in bytes (VmSize).
rlim_t mapped_bytes(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("VmSize:")) {
            return std::stoull(line.substr(7)) * 1024;
        }
    }
    FAIL("no VmSize for pid " << pid);
    return 0;
}

// What listing `dir` comes to: "ok" with the entry count, or the errno's name.
std::string list_outcome(const fs::path& dir, std::size_t* count) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        return fbfs::test::outcome(-1);
    }
    *count = 0;
    errno = 0;
    while (::readdir(d) != nullptr) {
        ++*count;
    }
    std::string result = fbfs::test::outcome(errno == 0 ? 0 : -1);
    ::closedir(d);
    return result;
}

// Sets an environment variable for this scope.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : m_name(name) { ::setenv(name, value, 1); }
    ~ScopedEnv() { ::unsetenv(m_name); }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* m_name;
};

}  // namespace

TEST_CASE("fuse_server: a request that runs out of memory fails alone; the mount serves on",
          "[fuse]") {
    // An exception that unwinds into libfuse terminates the daemon. Provoke a real one: a
    // listing of 5000 entries needs arrays larger than 128 KiB, which malloc maps on their own
    // (the threshold fixed by a tunable, so it does not adapt), and the daemon's address space
    // is capped at what it has mapped already, so those maps fail and operator new throws.
    ScopedEnv tunable("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072:glibc.malloc.arena_max=1");
    MountedStore m;
    fs::create_directory(m / "big");
    constexpr int k_files = 5000;
    for (int i = 0; i < k_files; ++i) {
        auto path = m / "big" / ("f" + std::to_string(i));
        REQUIRE(::mknod(path.c_str(), S_IFREG | 0644, 0) == 0);
    }
    pid_t daemon = daemon_of(m.mount.path());
    struct rlimit before {};
    REQUIRE(::prlimit(daemon, RLIMIT_AS, nullptr, &before) == 0);
    struct rlimit capped = before;
    capped.rlim_cur = mapped_bytes(daemon) + (64 << 10);
    REQUIRE(::prlimit(daemon, RLIMIT_AS, &capped, nullptr) == 0);

    std::size_t count = 0;
    std::string starved = list_outcome(m / "big", &count);
    REQUIRE(::prlimit(daemon, RLIMIT_AS, &before, nullptr) == 0);  // if it still lives
    CHECK(starved == "EIO");

    // The daemon is alive and the mount whole: the same listing works with memory to spare.
    CHECK(::kill(daemon, 0) == 0);
    CHECK(list_outcome(m / "big", &count) == "ok");
    CHECK(count == k_files + 2);
    CHECK(fbfs::test::read_path(m.store() / "log" / "default.log").find("request failed") !=
          std::string::npos);
    m.mount.unmount();
}
