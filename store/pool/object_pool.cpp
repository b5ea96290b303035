#include "store/pool/object_pool.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "store/base/fd_io.h"

namespace fbfs {

namespace {

namespace fs = std::filesystem;

// One copy_file_range() call's most; a put being cancelled notices within one of these.
constexpr std::uint64_t k_copy_chunk = std::uint64_t{16} << 20;
// The buffer of a copy that copy_file_range() cannot make.
constexpr std::uint64_t k_buffer = std::uint64_t{1} << 20;
// Below this a regular file is copied and hashed on the calling thread: a helper thread costs
// more than it saves.
constexpr off_t k_concurrent_min = off_t{8} << 20;
constexpr mode_t k_dir_mode = 0700;
constexpr mode_t k_object_mode = 0444;

struct Hashed {
    ObjectId id;
    std::uint64_t size = 0;
};

Result<void> make_dir(const fs::path& dir) {
    if (::mkdir(dir.c_str(), k_dir_mode) != 0 && errno != EEXIST) {
        return errno_error(fmt::format("cannot create directory {}", dir.string()));
    }
    return {};
}

// A file being written in tmp/. Unlinked on destruction unless keep() was called after the
// file was renamed into the pool, so a failed put leaves nothing behind. Move-only.
class TempFile {
public:
    static Result<TempFile> create(const fs::path& dir, std::string_view prefix = "put-") {
        std::string pattern = (dir / (std::string(prefix) + "XXXXXX")).string();
        int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
        if (fd < 0) {
            return errno_error(fmt::format("cannot create a temporary file in {}", dir.string()));
        }
        return TempFile(UniqueFd(fd), fs::path(pattern));
    }
    // Takes charge of `fd`, open on `path`, a file already made.
    static TempFile own(UniqueFd fd, fs::path path) {
        return TempFile(std::move(fd), std::move(path));
    }

    TempFile(TempFile&& other) noexcept
        : m_fd(std::move(other.m_fd)), m_path(std::exchange(other.m_path, {})) {}
    TempFile& operator=(TempFile&&) = delete;
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile() {
        if (!m_path.empty()) {
            ::unlink(m_path.c_str());
        }
    }

    int fd() const { return m_fd.get(); }
    const fs::path& path() const { return m_path; }
    void keep() { m_path.clear(); }
    // Keeps the file and hands over its fd.
    UniqueFd release() {
        keep();
        return std::move(m_fd);
    }

private:
    TempFile(UniqueFd fd, fs::path path) : m_fd(std::move(fd)), m_path(std::move(path)) {}

    UniqueFd m_fd;
    fs::path m_path;
};

// Reads `src` from its current offset to its end, hashing and appending to `dst`.
Result<Hashed> copy_stream(int src, const TempFile& dst) {
    Sha256 hasher;
    auto total = read_chunks(src, std::nullopt, nullptr, [&](std::string_view chunk) {
        hasher.update(chunk.data(), chunk.size());
        return write_all(dst.fd(), chunk, dst.path().string());
    });
    return total ? Result<Hashed>(Hashed{hasher.finish(), *total}) : std::unexpected(total.error());
}

// Hashes `src` from `offset` to its end with pread(). Gives up early, with ECANCELED, once `stop`
// is set.
Result<Hashed> hash_range(int src, off_t offset, const std::atomic<bool>& stop) {
    Sha256 hasher;
    auto total = read_chunks(src, offset, &stop, [&](std::string_view chunk) {
        hasher.update(chunk.data(), chunk.size());
        return Result<void>();
    });
    return total ? Result<Hashed>(Hashed{hasher.finish(), *total}) : std::unexpected(total.error());
}

// Copies `length` bytes of `src` at `in` into `dst` at `out` with pread() and pwrite(), for
// filesystems that cannot copy_file_range() between these two files. Returns how many bytes it
// copied: fewer if `src` ended first.
Result<std::uint64_t> copy_by_buffer(int src, off_t in, const TempFile& dst, off_t out,
                                     std::uint64_t length, const std::atomic<bool>& stop) {
    auto buffer = std::make_unique_for_overwrite<char[]>(k_buffer);
    std::uint64_t total = 0;
    while (total < length) {
        if (stop.load(std::memory_order_relaxed)) {
            return make_error(ECANCELED, "cancelled");
        }
        auto want = static_cast<std::size_t>(std::min<std::uint64_t>(length - total, k_buffer));
        ssize_t n = ::pread(src, buffer.get(), want, in + static_cast<off_t>(total));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return errno_error(fmt::format("cannot read {}", fd_name(src)));
        }
        if (n == 0) {
            break;
        }
        TRY(pwrite_all(dst.fd(), {buffer.get(), static_cast<std::size_t>(n)},
                       out + static_cast<off_t>(total), dst.path().string()));
        total += static_cast<std::uint64_t>(n);
    }
    return total;
}

// Copies `length` bytes of `src` at `in` into `dst` at `out` inside the kernel (no trip through
// user space; a reflink where the filesystem has them), through a buffer where it cannot. Gives
// up early once `stop` is set. Returns how many bytes it copied: fewer if `src` ended first.
Result<std::uint64_t> copy_extent(int src, off_t in, const TempFile& dst, off_t out,
                                  std::uint64_t length, const std::atomic<bool>& stop) {
    loff_t from = in;
    loff_t to = out;
    std::uint64_t total = 0;
    while (total < length) {
        if (stop.load(std::memory_order_relaxed)) {
            return make_error(ECANCELED, "cancelled");
        }
        std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(length - total, k_copy_chunk));
        ssize_t n = ::copy_file_range(src, &from, dst.fd(), &to, want, 0);
        if (n > 0) {
            total += static_cast<std::uint64_t>(n);
            continue;
        }
        if (n == 0) {
            return total;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
            auto rest = copy_by_buffer(src, from, dst, to, length - total, stop);
            return rest ? Result<std::uint64_t>(total + *rest) : rest;
        }
        return errno_error(fmt::format("cannot copy {} to {}", fd_name(src), dst.path().string()));
    }
    return total;
}

// Copies `src` from `offset` to `end` into `dst` from its start, copying only the data: a hole
// of `src` stays a hole (the copy's size is set at the end), so a sparse file takes no more room
// than it did. Gives up early once `stop` is set. Returns how many bytes the copy holds: fewer
// than asked if `src` ended first.
Result<std::uint64_t> copy_range(int src, off_t offset, off_t end, const TempFile& dst,
                                 const std::atomic<bool>& stop) {
    off_t at = offset;
    while (at < end) {
        TRY_ASSIGN(std::optional<DataExtent> extent, next_data(src, at, end));
        if (!extent) {
            at = end;  // a hole to the end
            break;
        }
        auto length = static_cast<std::uint64_t>(extent->end - extent->start);
        TRY_ASSIGN(std::uint64_t copied,
                   copy_extent(src, extent->start, dst, extent->start - offset, length, stop));
        at = extent->start + static_cast<off_t>(copied);
        if (copied < length) {
            break;  // `src` ended early: it was truncated meanwhile
        }
    }
    if (::ftruncate(dst.fd(), at - offset) != 0) {
        return errno_error(fmt::format("cannot size {}", dst.path().string()));
    }
    return static_cast<std::uint64_t>(at - offset);
}

// Copies and hashes a regular file at once: a helper thread copies `src` into `dst` while this
// thread hashes `src`. Both read the same pages, which the page cache serves once. Fails, rather
// than store bytes that do not match their id, if `src` changed size or mtime meanwhile.
Result<Hashed> copy_regular(int src, const struct stat& before, off_t offset, const TempFile& dst) {
    // Readahead for both readers; only a hint, so a failure changes nothing.
    ::posix_fadvise(src, offset, 0, POSIX_FADV_SEQUENTIAL);
    std::atomic<bool> stop{false};
    Result<std::uint64_t> copied = 0;
    Result<Hashed> hashed = Hashed{};
    {
        std::jthread copier([&] {
            copied = copy_range(src, offset, before.st_size, dst, stop);
            if (!copied) {
                stop = true;
            }
        });
        hashed = hash_range(src, offset, stop);
        if (!hashed) {
            stop = true;
        }
    }
    // The first failure is the one to report; the other side only saw ECANCELED.
    if (!hashed && hashed.error().code != ECANCELED) {
        return hashed;
    }
    TRY(copied);
    if (!hashed) {
        return hashed;
    }
    struct stat after {};
    if (::fstat(src, &after) != 0) {
        return errno_error(fmt::format("cannot stat {}", fd_name(src)));
    }
    auto expected = static_cast<std::uint64_t>(before.st_size - offset);
    if (*copied != hashed->size || hashed->size != expected || after.st_size != before.st_size ||
        after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
        after.st_mtim.tv_nsec != before.st_mtim.tv_nsec) {
        return make_error(EAGAIN, fmt::format("{} changed while it was being stored (try again "
                                              "once nothing writes to it)",
                                              fd_name(src)));
    }
    return hashed;
}

}  // namespace

ObjectPool::ObjectPool(fs::path root, fs::path objects, fs::path tmp)
    : m_root(std::move(root)),
      m_objects(std::move(objects)),
      m_tmp(std::move(tmp)),
      m_spares(std::make_shared<SpareFiles>(m_tmp)),
      m_blocks(std::make_shared<ObjectBlocks>()) {}

Result<ObjectPool> ObjectPool::open(const fs::path& root) {
    struct stat st {};
    if (::stat(root.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            return make_error(ENOENT, fmt::format("store {} does not exist (create it first, or "
                                                  "pass an existing directory)",
                                                  root.string()));
        }
        return errno_error(fmt::format("cannot open store {}", root.string()));
    }
    if (!S_ISDIR(st.st_mode)) {
        return make_error(ENOTDIR, fmt::format("store {} is not a directory", root.string()));
    }
    ObjectPool pool(root, root / "objects", root / "tmp");
    for (const auto& dir : {pool.m_objects, pool.m_tmp}) {
        TRY(make_dir(dir));
    }
    return pool;
}

Result<PutResult> ObjectPool::put_bytes(std::span<const std::byte> bytes) const {
    TRY_ASSIGN(auto temp, TempFile::create(m_tmp));
    if (auto written =
            write_all(temp.fd(), {reinterpret_cast<const char*>(bytes.data()), bytes.size()},
                      temp.path().string());
        !written) {
        return std::unexpected(written.error());
    }
    if (::fchmod(temp.fd(), k_object_mode) != 0) {
        return errno_error(fmt::format("cannot chmod {}", temp.path().string()));
    }
    auto put = publish(temp.path(), ObjectId::of(bytes), bytes.size());
    if (put) {
        temp.keep();
    }
    return put;
}

Result<PutResult> ObjectPool::put_bytes(std::string_view bytes) const {
    return put_bytes(std::as_bytes(std::span(bytes.data(), bytes.size())));
}

Result<PutResult> ObjectPool::put_fd(int fd) const {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return errno_error(fmt::format("cannot stat {}", fd_name(fd)));
    }
    TRY_ASSIGN(auto temp, TempFile::create(m_tmp));
    // Files that report no size (those in /proc) and pipes can only be read as a stream.
    off_t offset = S_ISREG(st.st_mode) ? ::lseek(fd, 0, SEEK_CUR) : -1;
    bool concurrent = offset >= 0 && st.st_size - offset >= k_concurrent_min;
    TRY_ASSIGN(auto hashed,
               concurrent ? copy_regular(fd, st, offset, temp) : copy_stream(fd, temp));
    if (::fchmod(temp.fd(), k_object_mode) != 0) {
        return errno_error(fmt::format("cannot chmod {}", temp.path().string()));
    }
    auto put = publish(temp.path(), hashed.id, hashed.size);
    if (put) {
        temp.keep();
    }
    return put;
}

Result<PutResult> ObjectPool::put_path(const fs::path& path) const {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return errno_error(fmt::format("cannot open {}", path.string()));
    }
    return put_fd(fd.get());
}

Result<PutResult> ObjectPool::adopt(const fs::path& file) const {
    auto sealed = seal(file);
    if (!sealed) {
        return sealed;
    }
    return publish(file, sealed->id, sealed->size);
}

Result<PutResult> ObjectPool::seal(const fs::path& file) const {
    if (file.parent_path().lexically_normal() != m_tmp.lexically_normal()) {
        return make_error(EINVAL, fmt::format("cannot adopt {}: only files directly in {} can be "
                                              "moved into the pool",
                                              file.string(), m_tmp.string()));
    }
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        return errno_error(fmt::format("cannot open {}", file.string()));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        return errno_error(fmt::format("cannot stat {}", file.string()));
    }
    if (!S_ISREG(st.st_mode)) {
        return make_error(EINVAL,
                          fmt::format("cannot adopt {}: not a regular file", file.string()));
    }
    TRY_ASSIGN(auto hashed, hash_fd(fd.get()));
    if (::fchmod(fd.get(), k_object_mode) != 0) {
        return errno_error(fmt::format("cannot chmod {}", file.string()));
    }
    return PutResult{hashed.id, hashed.size, false};
}

void ObjectPool::keep_spares(std::string prefix, std::size_t count) const {
    m_spares->enable(std::move(prefix), count);
}

Result<TempCopy> ObjectPool::copy_to_temp(int from, std::string_view prefix) const {
    // An empty file is made new: emptying a spare would truncate it to nothing, which costs ext4
    // a flush at its close (auto_da_alloc).
    auto spare = from >= 0 ? m_spares->take() : std::nullopt;
    TRY_ASSIGN(auto temp,
               spare ? Result<TempFile>(TempFile::own(std::move(spare->first), spare->second))
                     : TempFile::create(m_tmp, prefix));
    std::uint64_t size = 0;
    if (from >= 0) {
        struct stat st {};
        if (::fstat(from, &st) != 0) {
            return errno_error(fmt::format("cannot stat {}", fd_name(from)));
        }
        std::atomic<bool> never{false};
        TRY_ASSIGN(auto copied, copy_range(from, 0, st.st_size, temp, never));
        size = copied;
    }
    fs::path path = temp.path();
    return TempCopy{temp.release(), std::move(path), size};
}

Result<PutResult> ObjectPool::hash_fd(int fd) {
    std::atomic<bool> never{false};
    TRY_ASSIGN(auto hashed, hash_range(fd, 0, never));
    return PutResult{hashed.id, hashed.size, false};
}

bool ObjectPool::contains(const ObjectId& id) const {
    return ::access(object_path(id).c_str(), F_OK) == 0;
}

Result<UniqueFd> ObjectPool::open_object(const ObjectId& id) const {
    auto path = object_path(id);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return errno_error(fmt::format("cannot open object {}", path.string()));
    }
    return fd;
}

Result<UniqueFd> ObjectPool::open_or_fetch(const ObjectId& id) const {
    auto fd = open_object(id);
    if (!fd && fd.error().code == ENOENT && m_fetcher) {
        if (auto fetched = m_fetcher->fetch(id, *this); !fetched) {
            spdlog::error("cannot fetch object {}: {}", id.hex(), fetched.error().message);
            return make_error(EIO, fetched.error().message);
        }
        fd = open_object(id);
    }
    return fd;
}

Result<std::uint64_t> ObjectPool::size(const ObjectId& id) const {
    auto path = object_path(id);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return errno_error(fmt::format("cannot stat object {}", path.string()));
    }
    return static_cast<std::uint64_t>(st.st_size);
}

std::optional<std::uint64_t> ObjectPool::allocated_blocks(const ObjectId& id) const {
    auto known = m_blocks->find(id);
    if (known.known) {
        return known.blocks;
    }
    struct stat st {};
    std::optional<std::uint64_t> blocks;
    if (::stat(object_path(id).c_str(), &st) == 0) {
        blocks = static_cast<std::uint64_t>(st.st_blocks);
    } else if (errno != ENOENT) {
        return std::nullopt;  // not remembered: the next call tries again
    }
    m_blocks->remember(id, blocks, known.generation);
    return blocks;
}

Result<void> ObjectPool::remove(const ObjectId& id) const {
    auto path = object_path(id);
    bool kept = m_spares->keep(path);
    int rc = kept ? 0 : ::unlink(path.c_str());
    int error = errno;
    m_blocks->forget(id);  // after the object went, so no stat under way remembers it
    if (rc != 0 && error != ENOENT) {
        return sys_error(error, fmt::format("cannot remove object {}", path.string()));
    }
    return {};
}

Result<bool> ObjectPool::verify(const ObjectId& id) const {
    TRY_ASSIGN(auto fd, open_object(id));
    std::atomic<bool> never{false};
    TRY_ASSIGN(auto hashed, hash_range(fd.get(), 0, never));
    return hashed.id == id;
}

Result<void> ObjectPool::for_each(
    const std::function<void(const ObjectId&, std::uint64_t)>& visit) const {
    auto fail = [](const std::error_code& ec, const fs::path& path) {
        return sys_error(ec.value(), fmt::format("cannot list {}", path.string()));
    };
    std::error_code ec;
    for (fs::directory_iterator fan(m_objects, ec), end; fan != end; fan.increment(ec)) {
        if (ec) {
            return fail(ec, m_objects);
        }
        std::string prefix = fan->path().filename().string();
        if (prefix.size() != 2 || !fan->is_directory(ec)) {
            continue;
        }
        for (fs::directory_iterator entry(fan->path(), ec); entry != end; entry.increment(ec)) {
            if (ec) {
                return fail(ec, fan->path());
            }
            // Only canonical names: "AB/…" or a stray "x.tmp" is not an object of this pool.
            std::string hex = prefix + entry->path().filename().string();
            auto id = ObjectId::parse(hex);
            if (!id || id->hex() != hex || !entry->is_regular_file(ec)) {
                continue;
            }
            auto size = entry->file_size(ec);
            if (ec) {
                return fail(ec, entry->path());
            }
            visit(*id, size);
        }
        if (ec) {
            return fail(ec, fan->path());
        }
    }
    if (ec) {
        return fail(ec, m_objects);
    }
    return {};
}

fs::path ObjectPool::object_path(const ObjectId& id) const {
    std::string hex = id.hex();
    return m_objects / hex.substr(0, 2) / hex.substr(2);
}

Result<PutResult> ObjectPool::publish(const fs::path& temp, const ObjectId& id,
                                      std::uint64_t size) const {
    auto target = object_path(id);
    // Neither call replaces an existing object, so a concurrent put of the same bytes that got
    // there first wins and this copy is dropped.
    auto move = [&] {
        int rc = ::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE);
        if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
            // A filesystem without RENAME_NOREPLACE: link() refuses to replace too.
            rc = ::link(temp.c_str(), target.c_str());
            if (rc == 0) {
                ::unlink(temp.c_str());
            }
        }
        return rc;
    };
    int rc = move();
    if (rc != 0 && errno == ENOENT) {
        // The fan-out directory is made on first use (callers publish inside a metadata
        // transaction: one call, not two, in the usual case).
        TRY(make_dir(target.parent_path()));
        rc = move();
    }
    int error = errno;
    // What this process remembered of the object (absent, say) may be out of date now; a stat
    // under way since before the move is not remembered either.
    m_blocks->forget(id);
    errno = error;
    if (rc == 0) {
        return PutResult{id, size, false};
    }
    if (errno == EEXIST) {
        ::unlink(temp.c_str());
        return PutResult{id, size, true};
    }
    return errno_error(
        fmt::format("cannot move {} into the pool as {}", temp.string(), target.string()));
}

}  // namespace fbfs
