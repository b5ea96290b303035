// Sparse files and fallocate(2) through real mounts, held against what the disk under the test's
// temp dir (ext4 here) does with the same calls: a file that is almost all hole stays small
// through the mount, in the store, after a remount, a pack and an unpack, and a copy-up from the
// source; SEEK_DATA and SEEK_HOLE answer through the mount as on the disk, so `cp --sparse=auto`
// and `tar -S` keep the holes; each fallocate mode gives ext4's outcome, size, bytes and holes.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "store/base/unique_fd.h"
#include "tests/support/mount.h"
#include "tests/support/posix.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tree.h"

namespace fs = std::filesystem;
using fbfs::test::Mount;
using fbfs::test::MountedStore;
using fbfs::test::open_fd;
using fbfs::test::outcome;
using fbfs::test::pread_all;
using fbfs::test::pwrite_all;
using fbfs::test::random_bytes;
using fbfs::test::read_path;
using fbfs::test::run_cli;
using fbfs::test::run_tool_ok;
using fbfs::test::stat_of;
using fbfs::test::sys_error;
using fbfs::test::TempDir;

namespace {

constexpr off_t k_kib = 1024;
constexpr off_t k_mib = 1024 * k_kib;

struct stat fstat_of(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        throw sys_error("fstat");
    }
    return st;
}

// Where data and holes lie in the file behind `fd`, as SEEK_DATA and SEEK_HOLE say:
// "data 0+8192 hole 8192+4096 ..." (start+length), up to the file's size.
std::string extents_of(int fd) {
    const off_t size = fstat_of(fd).st_size;
    std::string out;
    off_t at = 0;
    while (at < size) {
        off_t data = ::lseek(fd, at, SEEK_DATA);
        if (data < 0 && errno != ENXIO) {
            throw sys_error("lseek SEEK_DATA");
        }
        data = data < 0 ? size : data;
        if (data > at) {
            out += "hole " + std::to_string(at) + "+" + std::to_string(data - at) + " ";
        }
        if (data >= size) {
            break;
        }
        off_t hole = ::lseek(fd, data, SEEK_HOLE);
        if (hole < 0) {
            throw sys_error("lseek SEEK_HOLE");
        }
        out += "data " + std::to_string(data) + "+" + std::to_string(hole - data) + " ";
        at = hole;
    }
    return out;
}

std::string extents_of(const fs::path& path) {
    auto fd = open_fd(path, O_RDONLY);
    return extents_of(fd.get());
}

// What the disk takes for the file at `path`, in bytes (st_blocks).
off_t stored_bytes(const fs::path& path) {
    return stat_of(path).st_blocks * 512;
}

// The object files of `store` that are `size` bytes long.
std::vector<fs::path> objects_of_size(const fs::path& store, off_t size) {
    std::vector<fs::path> found;
    for (const auto& entry : fs::recursive_directory_iterator(store / "objects")) {
        if (entry.is_regular_file() && stat_of(entry.path()).st_size == size) {
            found.push_back(entry.path());
        }
    }
    return found;
}

// A file as programs make sparse files: sized with ftruncate, then written here and there.
// 64 MiB with 100 KiB of data in four places; returns its bytes.
constexpr off_t k_sparse_size = 64 * k_mib;
std::string make_sparse(const fs::path& path) {
    std::string bytes(static_cast<std::size_t>(k_sparse_size), '\0');
    auto fd = open_fd(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (::ftruncate(fd.get(), k_sparse_size) != 0) {
        throw sys_error("ftruncate " + path.string());
    }
    const std::vector<std::pair<off_t, std::size_t>> pieces{{0, 16 * 1024},
                                                            {20 * k_mib, 40 * 1024},
                                                            {40 * k_mib + 12345, 40 * 1024},
                                                            {k_sparse_size - 4 * k_kib, 4 * 1024}};
    std::uint64_t seed = 1;
    for (auto [offset, length] : pieces) {
        std::string piece = random_bytes(seed++, length);
        pwrite_all(fd.get(), piece, offset);
        bytes.replace(static_cast<std::size_t>(offset), length, piece);
    }
    return bytes;
}

// Less than a tenth of the logical size: the holes take no room.
bool small(off_t stored) {
    return stored < k_sparse_size / 10;
}

// The file's st_blocks as the daemon's getattr gives it now: AT_STATX_FORCE_SYNC makes the kernel
// ask rather than answer from its attribute cache.
off_t blocks_asked(const fs::path& path) {
    struct statx stx {};
    if (::statx(AT_FDCWD, path.c_str(), AT_STATX_FORCE_SYNC, STATX_BLOCKS, &stx) != 0) {
        throw sys_error("statx " + path.string());
    }
    return static_cast<off_t>(stx.stx_blocks);
}

}  // namespace

// ---- holes ------------------------------------------------------------------------------------

TEST_CASE("Mount: a file that is almost all hole stays small through the mount and in the store",
          "[fuse]") {
    MountedStore m;
    const std::string bytes = make_sparse(m / "f");
    const std::string holes = extents_of(m / "f");
    CHECK(holes == [&] {
        make_sparse(m.tmp / "disk");
        return extents_of(m.tmp / "disk");
    }());
    CHECK(small(stored_bytes(m / "f")));
    auto objects = objects_of_size(m.store(), k_sparse_size);
    REQUIRE(objects.size() == 1);
    CHECK(small(stored_bytes(objects[0])));

    SECTION("a change copies the object into a staging file without filling its holes") {
        {
            auto fd = open_fd(m / "f", O_RDWR);
            pwrite_all(fd.get(), "x", 30 * k_mib);
            CHECK(small(fstat_of(fd.get()).st_blocks * 512));
        }
        std::string changed = bytes;
        changed[static_cast<std::size_t>(30 * k_mib)] = 'x';
        CHECK(read_path(m / "f") == changed);
        CHECK(small(stored_bytes(m / "f")));
        objects = objects_of_size(m.store(), k_sparse_size);
        REQUIRE(objects.size() == 1);
        CHECK(small(stored_bytes(objects[0])));
    }
    SECTION("the holes survive an unmount and a mount") {
        m.mount.remount();
        CHECK(read_path(m / "f") == bytes);
        CHECK(extents_of(m / "f") == holes);
        CHECK(small(stored_bytes(m / "f")));
    }
}

TEST_CASE("Mount: a stored file's blocks are stat'ed from its object once, then remembered",
          "[fuse]") {
    // A build stats files by the thousand; a stat of the pool object per getattr was a system
    // call each. Hiding the object after the first getattr shows that later ones make none.
    MountedStore m;
    make_sparse(m / "f");
    const off_t blocks = blocks_asked(m / "f");
    CHECK(small(blocks * 512));
    auto objects = objects_of_size(m.store(), k_sparse_size);
    REQUIRE(objects.size() == 1);
    CHECK(blocks == stat_of(objects[0]).st_blocks);
    fs::rename(objects[0], m.tmp / "hidden");
    const off_t later = blocks_asked(m / "f");
    fs::rename(m.tmp / "hidden", objects[0]);
    CHECK(later == blocks);
}

TEST_CASE(
    "Mount: SEEK_DATA and SEEK_HOLE answer as on the disk, written bytes not yet sent "
    "included",
    "[fuse]") {
    MountedStore m;
    make_sparse(m.tmp / "disk");
    const std::string disk = extents_of(m.tmp / "disk");
    {
        // Still open for writing: the kernel may hold the written pages in its cache.
        auto fd = open_fd(m / "f", O_RDWR | O_CREAT, 0644);
        REQUIRE(::ftruncate(fd.get(), k_sparse_size) == 0);
        pwrite_all(fd.get(), random_bytes(1, 16 * 1024), 0);
        pwrite_all(fd.get(), random_bytes(2, 40 * 1024), 20 * k_mib);
        pwrite_all(fd.get(), random_bytes(3, 40 * 1024), 40 * k_mib + 12345);
        pwrite_all(fd.get(), random_bytes(4, 4 * 1024), k_sparse_size - 4 * k_kib);
        CHECK(extents_of(fd.get()) == disk);
    }
    CHECK(extents_of(m / "f") == disk);
    auto fd = open_fd(m / "f", O_RDONLY);
    auto disk_fd = open_fd(m.tmp / "disk", O_RDONLY);
    for (int whence : {SEEK_DATA, SEEK_HOLE}) {
        for (off_t at :
             {off_t{0}, 17 * k_kib, k_sparse_size - 1, k_sparse_size, 2 * k_sparse_size}) {
            INFO("whence " << whence << " at " << at);
            off_t on_disk = ::lseek(disk_fd.get(), at, whence);
            std::string disk_outcome = outcome(on_disk);
            off_t mounted = ::lseek(fd.get(), at, whence);
            CHECK(outcome(mounted) == disk_outcome);
            CHECK(mounted == on_disk);
        }
    }
    fbfs::UniqueFd empty = open_fd(m / "empty", O_RDWR | O_CREAT, 0644);
    CHECK(outcome(::lseek(empty.get(), 0, SEEK_DATA)) == "ENXIO");
    CHECK(outcome(::lseek(empty.get(), 0, SEEK_HOLE)) == "ENXIO");
}

TEST_CASE("Mount: cp --sparse=auto and tar -S keep the holes of files in and out of the mount",
          "[fuse]") {
    MountedStore m;
    const std::string bytes = make_sparse(m / "f");
    make_sparse(m.tmp / "disk");

    run_tool_ok({"cp", "--sparse=auto", (m / "f").string(), (m.tmp / "out").string()});
    CHECK(read_path(m.tmp / "out") == bytes);
    CHECK(small(stored_bytes(m.tmp / "out")));

    run_tool_ok({"cp", "--sparse=auto", (m.tmp / "disk").string(), (m / "in").string()});
    CHECK(read_path(m / "in") == bytes);
    CHECK(small(stored_bytes(m / "in")));

    run_tool_ok(
        {"tar", "-S", "-cf", (m.tmp / "f.tar").string(), "-C", m.mount.path().string(), "f"});
    CHECK(small(static_cast<off_t>(fs::file_size(m.tmp / "f.tar"))));
    fs::create_directory(m.tmp / "x");
    run_tool_ok({"tar", "-xf", (m.tmp / "f.tar").string(), "-C", (m.tmp / "x").string()});
    CHECK(read_path(m.tmp / "x" / "f") == bytes);
    CHECK(small(stored_bytes(m.tmp / "x" / "f")));
}

TEST_CASE("Mount: a sparse source file keeps its holes when copied up", "[fuse]") {
    TempDir tmp;
    fs::create_directory(tmp / "src");
    const std::string bytes = make_sparse(tmp / "src" / "f");
    const std::string holes = extents_of(tmp / "src" / "f");
    Mount m(tmp / "store", tmp / "mnt", {"--source", (tmp / "src").string()});
    CHECK(extents_of(m / "f") == holes);
    CHECK(small(stored_bytes(m / "f")));
    {
        auto fd = open_fd(m / "f", O_RDWR);  // copies the file up
        pwrite_all(fd.get(), "x", 30 * k_mib);
    }
    std::string changed = bytes;
    changed[static_cast<std::size_t>(30 * k_mib)] = 'x';
    CHECK(read_path(m / "f") == changed);
    CHECK(read_path(tmp / "src" / "f") == bytes);
    CHECK(small(stored_bytes(m / "f")));
    auto objects = objects_of_size(tmp / "store", k_sparse_size);
    REQUIRE(objects.size() == 1);
    CHECK(small(stored_bytes(objects[0])));
}

TEST_CASE("Mount: a sparse file keeps its holes through pack and unpack into a fresh store",
          "[fuse]") {
    TempDir tmp;
    std::string bytes;
    std::string holes;
    {
        Mount m(tmp / "store", tmp / "mnt");
        bytes = make_sparse(m / "f");
        holes = extents_of(m / "f");
    }
    auto packed =
        run_cli({"pack", "--store", (tmp / "store").string(), "-o", (tmp / "cache.pack").string()});
    REQUIRE(packed.status == 0);
    CHECK(small(static_cast<off_t>(fs::file_size(tmp / "cache.pack"))));
    auto unpacked =
        run_cli({"unpack", "--store", (tmp / "fresh").string(), (tmp / "cache.pack").string()});
    REQUIRE(unpacked.status == 0);
    auto objects = objects_of_size(tmp / "fresh", k_sparse_size);
    REQUIRE(objects.size() == 1);
    CHECK(small(stored_bytes(objects[0])));
    Mount m(tmp / "fresh", tmp / "mnt");
    CHECK(read_path(m / "f") == bytes);
    CHECK(extents_of(m / "f") == holes);
    CHECK(small(stored_bytes(m / "f")));
}

// ---- fallocate --------------------------------------------------------------------------------

namespace {

struct Allocated {
    std::vector<std::string> calls;  // each fallocate's outcome
    off_t size = 0;
    std::string extents;
    std::string bytes;
};

constexpr off_t k_written = 64 * k_kib;
// Inside the data, across its end, past its end.
const std::vector<std::pair<off_t, off_t>> k_ranges{
    {8 * k_kib, 16 * k_kib}, {60 * k_kib, 16 * k_kib}, {128 * k_kib, 4 * k_kib}};

// 64 KiB of data, then fallocate(mode) over each of k_ranges.
Allocated allocate_in(const fs::path& path, int mode) {
    auto fd = open_fd(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    pwrite_all(fd.get(), random_bytes(7, k_written), 0);
    Allocated a;
    for (auto [offset, length] : k_ranges) {
        a.calls.push_back(outcome(::fallocate(fd.get(), mode, offset, length)));
    }
    a.size = fstat_of(fd.get()).st_size;
    a.extents = extents_of(fd.get());  // before any read, which can make unwritten blocks data
    a.bytes = pread_all(fd.get());
    return a;
}

// What ext4 gives for a mode that succeeds: the size it says, zeros where it says.
Allocated expected_allocation(int mode) {
    Allocated a;
    a.calls.assign(k_ranges.size(), "ok");
    a.size = (mode & FALLOC_FL_KEEP_SIZE) ? k_written : 132 * k_kib;
    a.bytes = random_bytes(7, k_written);
    a.bytes.resize(static_cast<std::size_t>(a.size), '\0');
    if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
        for (auto [offset, length] : k_ranges) {
            auto from = static_cast<std::size_t>(std::min(offset, a.size));
            auto to = static_cast<std::size_t>(std::min(offset + length, a.size));
            a.bytes.replace(from, to - from, to - from, '\0');
        }
    }
    return a;
}

}  // namespace

TEST_CASE("Mount: each fallocate mode gives the outcome, size, bytes and holes ext4 gives",
          "[fuse]") {
    auto [mode, name] = GENERATE(table<int, std::string>({
        {0, "0"},
        {FALLOC_FL_KEEP_SIZE, "KEEP_SIZE"},
        {FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "PUNCH_HOLE|KEEP_SIZE"},
        {FALLOC_FL_PUNCH_HOLE, "PUNCH_HOLE"},
        {FALLOC_FL_ZERO_RANGE, "ZERO_RANGE"},
        {FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, "ZERO_RANGE|KEEP_SIZE"},
    }));
    INFO("mode " << name);
    MountedStore m;
    const Allocated disk = allocate_in(m.tmp / "disk", mode);
    const Allocated mounted = allocate_in(m / "f", mode);
    if (mode != FALLOC_FL_PUNCH_HOLE) {
        const Allocated ext4 = expected_allocation(mode);
        REQUIRE(disk.calls == ext4.calls);  // the disk under the test is what this file assumes
        CHECK(disk.size == ext4.size);
        CHECK(disk.bytes == ext4.bytes);
    }
    CHECK(mounted.calls == disk.calls);
    CHECK(mounted.size == disk.size);
    if (!(mode & FALLOC_FL_ZERO_RANGE)) {
        // A zeroed range is unwritten blocks, which ext4 reports as data or hole depending on
        // what its page cache holds at the time: no fixed answer to compare.
        CHECK(mounted.extents == disk.extents);
    }
    CHECK(mounted.bytes == disk.bytes);

    m.mount.remount();
    CHECK(read_path(m / "f") == disk.bytes);
    CHECK(stat_of(m / "f").st_size == disk.size);
    if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
        CHECK(extents_of(m / "f") == extents_of(m.tmp / "disk"));  // punched holes stay holes
    }
}

TEST_CASE("Mount: fallocate modes that FUSE does not pass on fail with EOPNOTSUPP", "[fuse]") {
    // ext4 has COLLAPSE_RANGE and INSERT_RANGE; the kernel's FUSE client refuses them before
    // they reach a daemon. The file stays as it was.
    MountedStore m;
    const std::string data = random_bytes(3, 64 * 1024);
    auto fd = open_fd(m / "f", O_RDWR | O_CREAT, 0644);
    pwrite_all(fd.get(), data, 0);
    CHECK(outcome(::fallocate(fd.get(), FALLOC_FL_COLLAPSE_RANGE, 4096, 4096)) == "EOPNOTSUPP");
    CHECK(outcome(::fallocate(fd.get(), FALLOC_FL_INSERT_RANGE, 4096, 4096)) == "EOPNOTSUPP");
    CHECK(pread_all(fd.get()) == data);
}
