#include "store/pool/object_pool.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/posix.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::ObjectId;
using fbfs::ObjectPool;
using fbfs::test::read_file;
using fbfs::test::TempDir;
using fbfs::test::write_file;

namespace {

ObjectPool open_pool(const TempDir& dir) {
    fs::create_directory(dir / "store");
    auto pool = ObjectPool::open(dir / "store");
    REQUIRE(pool);
    return std::move(*pool);
}

// Incompressible bytes, the same for the same seed.
std::string random_bytes(std::size_t size, std::uint64_t seed) {
    std::mt19937_64 random(seed);
    std::string bytes(size, '\0');
    for (std::size_t i = 0; i < size; i += 8) {
        std::uint64_t word = random();
        std::memcpy(bytes.data() + i, &word, std::min<std::size_t>(8, size - i));
    }
    return bytes;
}

unsigned mode_of(const fs::path& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

ino_t inode_of(const fs::path& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_ino;
}

// Every file (not directory) below `dir`, wherever it is.
std::vector<fs::path> files_under(const fs::path& dir) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        if (!entry.is_directory()) {
            files.push_back(entry.path());
        }
    }
    return files;
}

std::map<ObjectId, std::uint64_t> listing(const ObjectPool& pool) {
    std::map<ObjectId, std::uint64_t> objects;
    auto listed =
        pool.for_each([&](const ObjectId& id, std::uint64_t size) { objects[id] = size; });
    REQUIRE(listed);
    return objects;
}

std::string read_fd(int fd) {
    std::string bytes;
    char buffer[65536];
    ssize_t n = 0;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0) {
        bytes.append(buffer, static_cast<std::size_t>(n));
    }
    REQUIRE(n == 0);
    return bytes;
}

}  // namespace

TEST_CASE("ObjectPool: put bytes read back from objects/ab/cdef… as a read-only file", "[pool]") {
    TempDir dir;
    auto pool = open_pool(dir);

    auto put = pool.put_bytes(std::string_view("hello, pool"));
    REQUIRE(put);
    CHECK_FALSE(put->deduped);
    CHECK(put->size == 11);
    CHECK(put->id == ObjectId::of(std::string_view("hello, pool")));

    std::string hex = put->id.hex();
    fs::path expected = dir / "store" / "objects" / hex.substr(0, 2) / hex.substr(2);
    CHECK(pool.object_path(put->id) == expected);
    CHECK(read_file(expected) == "hello, pool");
    auto fd = pool.open_object(put->id);
    REQUIRE(fd);
    CHECK(read_fd(fd->get()) == "hello, pool");

    CHECK(mode_of(expected) == 0444);
    CHECK(mode_of(dir / "store" / "objects") == 0700);
    CHECK(mode_of(dir / "store" / "tmp") == 0700);
    CHECK(mode_of(expected.parent_path()) == 0700);
    CHECK(files_under(pool.tmp_dir()).empty());
}

TEST_CASE("ObjectPool: put_fd stores a large file, a small file and a pipe byte for byte",
          "[pool]") {
    TempDir dir;
    auto pool = open_pool(dir);
    // Large enough for the concurrent copy-and-hash path, and not a multiple of any buffer.
    std::string large = random_bytes((std::size_t{20} << 20) + 12345, 1);
    std::string small = random_bytes(100000, 2);
    write_file(dir / "large", large);
    write_file(dir / "small", small);

    for (const auto& [name, bytes] : {std::pair{"large", &large}, std::pair{"small", &small}}) {
        auto put = pool.put_path(dir / name);
        REQUIRE(put);
        CHECK(put->id == ObjectId::of(*bytes));
        CHECK(put->size == bytes->size());
        CHECK(read_file(pool.object_path(put->id)) == *bytes);
    }

    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    std::string streamed = random_bytes(300000, 3);  // more than a pipe buffer holds
    std::jthread writer([&] {
        CHECK(::write(pipe_fds[1], streamed.data(), streamed.size()) ==
              static_cast<ssize_t>(streamed.size()));
        ::close(pipe_fds[1]);
    });
    auto put = pool.put_fd(pipe_fds[0]);
    writer.join();
    ::close(pipe_fds[0]);
    REQUIRE(put);
    CHECK(put->id == ObjectId::of(streamed));
    CHECK(read_file(pool.object_path(put->id)) == streamed);
    CHECK(files_under(pool.tmp_dir()).empty());
}

TEST_CASE("ObjectPool: putting the same bytes twice stores one object", "[pool]") {
    TempDir dir;
    auto pool = open_pool(dir);
    std::string bytes = random_bytes((std::size_t{9} << 20) + 1, 4);
    write_file(dir / "source", bytes);

    auto first = pool.put_bytes(bytes);
    auto second = pool.put_bytes(bytes);
    auto by_path = pool.put_path(dir / "source");
    fbfs::UniqueFd fd(::open((dir / "source").c_str(), O_RDONLY));
    auto by_fd = pool.put_fd(fd.get());
    REQUIRE(first);
    REQUIRE(second);
    REQUIRE(by_path);
    REQUIRE(by_fd);
    CHECK_FALSE(first->deduped);
    CHECK(second->deduped);
    CHECK(by_path->deduped);
    CHECK(by_fd->deduped);
    CHECK(second->id == first->id);
    CHECK(by_path->id == first->id);
    CHECK(by_fd->id == first->id);

    CHECK(listing(pool).size() == 1);
    CHECK(files_under(dir / "store" / "objects").size() == 1);
    CHECK(files_under(pool.tmp_dir()).empty());
}

TEST_CASE("ObjectPool: a put whose source fails mid-read leaves no object and no temp file",
          "[pool]") {
    TempDir dir;
    auto pool = open_pool(dir);
    // Through /proc/self/mem, a readable page followed by an unmapped one reads as one page of
    // bytes and then EIO: a source that really fails part-way.
    long page = ::sysconf(_SC_PAGESIZE);
    auto page_size = static_cast<std::size_t>(page);
    void* pages =
        ::mmap(nullptr, 2 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(pages != MAP_FAILED);
    std::memset(pages, 'x', page_size);
    REQUIRE(::munmap(static_cast<char*>(pages) + page_size, page_size) == 0);
    fbfs::UniqueFd mem(::open("/proc/self/mem", O_RDONLY));
    REQUIRE(mem);
    auto address = static_cast<off_t>(reinterpret_cast<std::uintptr_t>(pages));
    std::string probe(2 * page_size, '\0');
    REQUIRE(::pread(mem.get(), probe.data(), probe.size(), address) == page);

    REQUIRE(::lseek(mem.get(), address, SEEK_SET) == address);
    auto put = pool.put_fd(mem.get());
    ::munmap(pages, page_size);

    REQUIRE_FALSE(put);
    CHECK(put.error().code == EIO);
    CHECK_THAT(put.error().message, Catch::Contains("mem"));
    CHECK(files_under(pool.tmp_dir()).empty());
    CHECK(files_under(dir / "store" / "objects").empty());
    CHECK(listing(pool).empty());
}

TEST_CASE("ObjectPool: eight threads putting the same 64 MiB file end with one intact object",
          "[pool]") {
    TempDir dir;
    auto pool = open_pool(dir);
    std::string bytes = random_bytes(std::size_t{64} << 20, 5);
    write_file(dir / "source", bytes);
    auto id = ObjectId::of(bytes);

    std::vector<fbfs::Result<fbfs::PutResult>> puts(8);
    {
        std::vector<std::jthread> threads;
        for (auto& put : puts) {
            threads.emplace_back([&] { put = pool.put_path(dir / "source"); });
        }
    }
    int stored = 0;
    for (const auto& put : puts) {
        REQUIRE(put);
        CHECK(put->id == id);
        stored += put->deduped ? 0 : 1;
    }
    CHECK(stored == 1);
    auto verified = pool.verify(id);
    REQUIRE(verified);
    CHECK(*verified);
    CHECK(listing(pool) == std::map<ObjectId, std::uint64_t>{{id, bytes.size()}});
    CHECK(files_under(pool.tmp_dir()).empty());
}

TEST_CASE("ObjectPool: verify passes an intact object and finds a flipped byte", "[pool]") {
    TempDir dir;
    auto pool = open_pool(dir);
    auto put = pool.put_bytes(random_bytes(50000, 6));
    REQUIRE(put);
    auto intact = pool.verify(put->id);
    REQUIRE(intact);
    CHECK(*intact);

    fs::path path = pool.object_path(put->id);
    fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
    std::string bytes = read_file(path);
    bytes[31337] = static_cast<char>(bytes[31337] ^ 0x01);
    write_file(path, bytes);
    auto damaged = pool.verify(put->id);
    REQUIRE(damaged);
    CHECK_FALSE(*damaged);
}

TEST_CASE("ObjectPool: contains, size, open_object, remove and for_each agree on the contents",
          "[pool]") {
    TempDir dir;
    auto pool = open_pool(dir);
    std::map<ObjectId, std::uint64_t> expected;
    for (std::size_t size : {0, 1, 4096, 70000}) {
        auto put = pool.put_bytes(random_bytes(size, size));
        REQUIRE(put);
        expected[put->id] = size;
    }
    // Names that are not canonical ids are not objects.
    fs::create_directory(dir / "store" / "objects" / "zz");
    write_file(dir / "store" / "objects" / "zz" / "not-an-id", "x");
    std::string lower = ObjectId::of(std::string_view("upper")).hex();
    std::string upper = lower;
    for (auto& c : upper) {
        c = static_cast<char>(std::toupper(c));
    }
    fs::create_directory(dir / "store" / "objects" / lower.substr(0, 2));
    write_file(dir / "store" / "objects" / lower.substr(0, 2) / upper.substr(2), "upper");
    CHECK(listing(pool) == expected);

    auto [gone, gone_size] = *expected.rbegin();
    CHECK(pool.contains(gone));
    auto size = pool.size(gone);
    REQUIRE(size);
    CHECK(*size == gone_size);
    REQUIRE(pool.remove(gone));
    CHECK_FALSE(pool.contains(gone));
    CHECK(pool.remove(gone));  // removing a missing object is not an error
    auto missing = pool.open_object(gone);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == ENOENT);
    CHECK_THAT(missing.error().message, Catch::Contains(pool.object_path(gone).string()));
    CHECK_FALSE(pool.size(gone));

    expected.erase(gone);
    CHECK(listing(pool) == expected);
}

TEST_CASE("ObjectPool: adopt moves a file from tmp/ into the pool without copying it", "[pool]") {
    TempDir dir;
    auto pool = open_pool(dir);
    std::string bytes = random_bytes(200000, 7);
    fs::path staged = pool.tmp_dir() / "staged";
    write_file(staged, bytes);
    ino_t inode = inode_of(staged);

    auto adopted = pool.adopt(staged);
    REQUIRE(adopted);
    CHECK_FALSE(adopted->deduped);
    CHECK(adopted->id == ObjectId::of(bytes));
    CHECK(adopted->size == bytes.size());
    fs::path object = pool.object_path(adopted->id);
    CHECK(inode_of(object) == inode);
    CHECK(mode_of(object) == 0444);
    CHECK_FALSE(fs::exists(staged));

    fs::path again = pool.tmp_dir() / "again";
    write_file(again, bytes);
    auto deduped = pool.adopt(again);
    REQUIRE(deduped);
    CHECK(deduped->deduped);
    CHECK_FALSE(fs::exists(again));
    CHECK(inode_of(object) == inode);
    CHECK(files_under(pool.tmp_dir()).empty());

    // A file outside tmp/ is not the pool's to take.
    write_file(dir / "outside", bytes);
    auto refused = pool.adopt(dir / "outside");
    REQUIRE_FALSE(refused);
    CHECK_THAT(refused.error().message, Catch::Contains((dir / "outside").string()));
    CHECK(fs::exists(dir / "outside"));
}

TEST_CASE("ObjectPool: opening a store whose root is missing fails and creates nothing", "[pool]") {
    TempDir dir;
    auto pool = ObjectPool::open(dir / "missing");
    REQUIRE_FALSE(pool);
    CHECK(pool.error().code == ENOENT);
    CHECK_THAT(pool.error().message, Catch::Contains((dir / "missing").string()));
    CHECK_FALSE(fs::exists(dir / "missing"));
    CHECK(fs::is_empty(dir.path()));
}

TEST_CASE("ObjectPool: copies and puts of a sparse file keep its holes, and its id is its bytes'",
          "[pool]") {
    TempDir dir;
    auto pool = open_pool(dir);
    // 64 MiB, data in three places, a hole at the end: what ftruncate and scattered writes make.
    constexpr off_t size = off_t{64} << 20;
    std::string bytes(static_cast<std::size_t>(size), '\0');
    fs::path sparse = dir / "sparse";
    fbfs::UniqueFd fd(::open(sparse.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    REQUIRE(fd);
    REQUIRE(::ftruncate(fd.get(), size) == 0);
    for (off_t at : {off_t{0}, off_t{20} << 20, (off_t{40} << 20) + 12345}) {
        std::string piece = random_bytes(50000, static_cast<std::uint64_t>(at));
        REQUIRE(::pwrite(fd.get(), piece.data(), piece.size(), at) ==
                static_cast<ssize_t>(piece.size()));
        bytes.replace(static_cast<std::size_t>(at), piece.size(), piece);
    }
    auto stored = [](const fs::path& path) {
        struct stat st {};
        REQUIRE(::stat(path.c_str(), &st) == 0);
        return st.st_blocks * 512;
    };
    const auto id = ObjectId::of(bytes);

    auto hashed = ObjectPool::hash_fd(fd.get());
    REQUIRE(hashed);
    CHECK(hashed->id == id);
    CHECK(hashed->size == bytes.size());

    auto copy = pool.copy_to_temp(fd.get(), "copy-");
    REQUIRE(copy);
    CHECK(copy->size == bytes.size());
    CHECK(read_file(copy->path) == bytes);
    CHECK(stored(copy->path) < size / 100);

    REQUIRE(::lseek(fd.get(), 0, SEEK_SET) == 0);
    auto put = pool.put_fd(fd.get());
    REQUIRE(put);
    CHECK(put->id == id);
    CHECK(read_file(pool.object_path(id)) == bytes);
    CHECK(stored(pool.object_path(id)) < size / 100);
    auto verified = pool.verify(id);
    REQUIRE(verified);
    CHECK(*verified);
}

TEST_CASE(
    "ObjectPool: with spares kept, a removed small object's file becomes the next temp "
    "copy, holding exactly the new bytes, and the spares go with the pool",
    "[pool]") {
    TempDir dir;
    const fs::path tmp = dir / "store" / "tmp";
    auto inode_of = [](const fs::path& path) {
        struct stat st {};
        REQUIRE(::lstat(path.c_str(), &st) == 0);
        return st.st_ino;
    };
    // New content with a hole where the old one had bytes: none of them may show through.
    const fs::path source = dir / "source";
    {
        fbfs::UniqueFd fd(::open(source.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        REQUIRE(fd);
        REQUIRE(::pwrite(fd.get(), "new", 3, 8192) == 3);
    }
    const std::string expected = std::string(8192, '\0') + "new";
    {
        auto pool = open_pool(dir);
        auto unkept = pool.put_bytes(std::string_view("removed before spares are kept"));
        REQUIRE(unkept);
        REQUIRE(pool.remove(unkept->id));
        CHECK(fbfs::test::names_in(tmp).empty());

        pool.keep_spares("spare-", 2);
        auto old = pool.put_bytes(std::string(9000, 'x'));
        REQUIRE(old);
        const auto old_inode = inode_of(pool.object_path(old->id));
        REQUIRE(pool.remove(old->id));
        CHECK(!pool.contains(old->id));
        CHECK(fbfs::test::names_in(tmp) == std::set<std::string>{"spare-0"});

        fbfs::UniqueFd from(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
        REQUIRE(from);
        auto copy = pool.copy_to_temp(from.get(), "copy-");
        REQUIRE(copy);
        CHECK(copy->path == tmp / "spare-0");
        CHECK(inode_of(copy->path) == old_inode);
        CHECK(read_file(copy->path) == expected);
        CHECK((::fcntl(copy->fd.get(), F_GETFL) & O_ACCMODE) == O_RDWR);
        // No spare left: the next copy is a new file.
        auto fresh = pool.copy_to_temp(-1, "copy-");
        REQUIRE(fresh);
        CHECK(fresh->path.filename().string().starts_with("copy-"));
        fs::remove(copy->path);
        fs::remove(fresh->path);

        // At most two spares, and none larger than 64 KiB.
        std::vector<ObjectId> ids;
        for (int i = 0; i < 3; ++i) {
            auto put = pool.put_bytes(std::string(100, static_cast<char>('a' + i)));
            REQUIRE(put);
            ids.push_back(put->id);
        }
        auto large = pool.put_bytes(std::string(64 * 1024 + 1, 'L'));
        REQUIRE(large);
        ids.push_back(large->id);
        for (const auto& id : ids) {
            REQUIRE(pool.remove(id));
            CHECK(!pool.contains(id));
        }
        CHECK(fbfs::test::names_in(tmp) == std::set<std::string>{"spare-1", "spare-2"});
    }
    CHECK(fbfs::test::names_in(tmp).empty());
}

TEST_CASE("ObjectPool: allocated_blocks stats an object once, and forgets it when it is removed",
          "[pool]") {
    TempDir dir;
    auto pool = open_pool(dir);
    const std::string bytes = random_bytes(200000, 7);
    auto put = pool.put_bytes(bytes);
    REQUIRE(put);
    const fs::path path = pool.object_path(put->id);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    auto blocks = pool.allocated_blocks(put->id);
    REQUIRE(blocks);
    CHECK(*blocks == static_cast<std::uint64_t>(st.st_blocks));

    SECTION("later calls answer from memory: an object taken away behind the pool's back") {
        fs::rename(path, dir / "away");
        CHECK(pool.allocated_blocks(put->id) == blocks);
        fs::rename(dir / "away", path);
    }
    SECTION("a removed object has none, and has them again once put back") {
        REQUIRE(pool.remove(put->id));
        CHECK_FALSE(pool.allocated_blocks(put->id));
        REQUIRE(pool.put_bytes(bytes));
        CHECK(pool.allocated_blocks(put->id) == blocks);
    }
    SECTION("an object the pool lacks has none until it is published") {
        const std::string other = random_bytes(100000, 8);
        const auto id = ObjectId::of(other);
        CHECK_FALSE(pool.allocated_blocks(id));
        write_file(pool.tmp_dir() / "fetched", other);
        REQUIRE(pool.adopt(pool.tmp_dir() / "fetched"));
        auto now = pool.allocated_blocks(id);
        REQUIRE(now);
        CHECK(*now > 0);
    }
    SECTION("copies of the pool share what it remembers") {
        ObjectPool copy = pool;
        fs::rename(path, dir / "away");
        CHECK(copy.allocated_blocks(put->id) == blocks);
        fs::rename(dir / "away", path);
    }
}
