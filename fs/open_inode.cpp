#include "fs/open_inode.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>

namespace fbfs {

namespace {

Result<void> sync_object(const ObjectPool& pool, const ObjectId& id) {
    auto path = pool.object_path(id);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    UniqueFd dir(::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd || ::fsync(fd.get()) != 0 || !dir || ::fsync(dir.get()) != 0) {
        return errno_error(fmt::format("syncing object {}", id.hex()));
    }
    return {};
}

}  // namespace

Result<void> OpenInode::open_writer(bool truncate_it) {
    {
        LockGuard lock(m_mutex);
        ++m_writers;
    }
    return truncate_it ? truncate(0) : Result<void>();
}

void OpenInode::release_writer() {
    LockGuard lock(m_mutex);
    m_writers -= m_writers > 0 ? 1 : 0;
}

bool OpenInode::has_writers() const {
    LockGuard lock(m_mutex);
    return m_writers > 0;
}

Result<SharedFd> OpenInode::data_fd() const {
    std::optional<ObjectId> object;
    {
        LockGuard lock(m_mutex);
        if (m_staging_fd) {
            return m_staging_fd;
        }
        if (m_sealed_fd) {
            return m_sealed_fd;
        }
        if (!m_object) {
            return SharedFd();  // an empty file
        }
        if (m_object_fd) {
            return m_object_fd;
        }
        object = m_object;
    }
    TRY_ASSIGN(auto fd, m_pool.open_or_fetch(*object));
    auto opened = std::make_shared<const UniqueFd>(std::move(fd));
    LockGuard lock(m_mutex);
    if (m_object == object && !m_object_fd) {
        m_object_fd = opened;  // kept for the next reads, unless another reader was first
    }
    return opened;
}

void OpenInode::note_read() const {
    std::optional<ObjectId> object;
    {
        LockGuard lock(m_mutex);
        object = m_object;
    }
    if (object) {
        m_pool.note_read(*object);
    }
}

Result<void> OpenInode::ensure_staging(bool copy) {
    LockGuard make(m_make);
    SharedFd from;
    std::optional<ObjectId> object;
    {
        LockGuard lock(m_mutex);
        if (m_staging_fd) {
            return {};
        }
        // The content is the sealed copy of a commit still recording it, else the object (which
        // never changes, so copying it to its end copies exactly m_size bytes).
        if (copy && m_sealed_fd) {
            from = m_sealed_fd;
        } else if (copy && m_object && m_size > 0) {
            object = m_object;
            from = m_object_fd;
        }
    }
    // The copy, the slow part, holds only m_make and the caller's shared m_io: reads go on from
    // the old content meanwhile, and no commit starts until the copy is the staging file.
    UniqueFd opened;
    if (object && !from) {
        TRY_ASSIGN(opened, m_pool.open_or_fetch(*object));
    }
    int source = from ? from->get() : opened ? opened.get() : -1;
    auto staged = m_pool.copy_to_temp(source, fmt::format("staging-{}-", m_volume));
    if (!staged) {
        return std::unexpected(staged.error());
    }
    LockGuard lock(m_mutex);
    m_staging_path = std::move(staged->path);
    m_staging_fd = std::make_shared<const UniqueFd>(std::move(staged->fd));
    return {};
}

void OpenInode::mark_changed() {
    m_mtime = m_ctime = now_ns();
    ++m_version;
}

Result<OpenInode::Write> OpenInode::begin_write() {
    std::shared_lock io(m_io);  // handed to the Write, which the analysis cannot follow
    m_io.assert_held_shared();
    TRY(ensure_staging(true));
    LockGuard lock(m_mutex);
    mark_changed();
    return Write{std::move(io), m_staging_fd};
}

void OpenInode::wrote(std::uint64_t end_offset) {
    LockGuard lock(m_mutex);
    m_size = std::max(m_size, end_offset);
}

void OpenInode::write_failed(int error) {
    LockGuard lock(m_mutex);
    m_write_error = m_write_error != 0 ? m_write_error : error;
}

Result<void> OpenInode::truncate(std::uint64_t size) {
    SharedLock io(m_io);
    if (auto ok = ensure_staging(size > 0); !ok) {  // nothing to copy when all of it goes
        return ok;
    }
    SharedFd fd;
    {
        LockGuard lock(m_mutex);
        fd = m_staging_fd;
    }
    if (::ftruncate(fd->get(), static_cast<off_t>(size)) != 0) {
        return errno_error("truncating a staging file");
    }
    LockGuard lock(m_mutex);
    m_size = size;
    mark_changed();
    return {};
}

Result<void> OpenInode::allocate(int mode, off_t offset, off_t length) {
    SharedLock io(m_io);
    if (auto ok = ensure_staging(true); !ok) {
        return ok;
    }
    SharedFd staging;
    {
        LockGuard lock(m_mutex);
        staging = m_staging_fd;
    }
    int fd = staging->get();
    int rc = ::fallocate(fd, mode, offset, length);
    if (rc != 0 && errno == EOPNOTSUPP && (mode & FALLOC_FL_ZERO_RANGE)) {
        // A store on a filesystem without ZERO_RANGE (tmpfs): the same bytes and size from the
        // two steps it does have.
        rc = ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
        rc = rc == 0 ? ::fallocate(fd, mode & FALLOC_FL_KEEP_SIZE, offset, length) : rc;
    }
    if (rc != 0) {
        return errno_error("fallocate on a staging file");
    }
    LockGuard lock(m_mutex);
    if (!(mode & FALLOC_FL_KEEP_SIZE)) {
        m_size = std::max(m_size, static_cast<std::uint64_t>(offset + length));
    }
    mark_changed();
    return {};
}

Result<off_t> OpenInode::seek(off_t offset, int whence) const {
    TRY_ASSIGN(SharedFd fd, data_fd());
    if (!fd) {
        return make_error(ENXIO, "the file is empty");
    }
    // Only the result matters: the fd's own offset is used by nobody (reads give theirs).
    off_t found = ::lseek(fd->get(), offset, whence);
    if (found < 0) {
        return errno_error("seeking data or a hole");
    }
    return found;
}

std::optional<std::uint64_t> OpenInode::allocated_blocks() const {
    SharedFd fd;
    std::optional<ObjectId> object;
    {
        LockGuard lock(m_mutex);
        fd = m_staging_fd ? m_staging_fd : m_sealed_fd;
        object = m_object;
    }
    if (!fd) {
        // The committed content: what the pool remembers of its object, which neither opens
        // nor fetches it (a getattr must not).
        return object ? m_pool.allocated_blocks(*object) : std::nullopt;
    }
    struct stat st {};
    if (::fstat(fd->get(), &st) != 0) {
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(st.st_blocks);
}

void OpenInode::overlay(InodeRecord& record) const {
    LockGuard lock(m_mutex);
    if (m_staging_fd || m_sealed_fd) {
        record.size = m_size;
    }
    record.mtime = m_mtime.value_or(record.mtime);
    record.atime = m_atime.value_or(record.atime);
    record.ctime = m_ctime.value_or(record.ctime);
}

void OpenInode::set_times(std::optional<TimeNs> atime, std::optional<TimeNs> mtime, TimeNs ctime) {
    LockGuard lock(m_mutex);
    m_atime = atime ? atime : m_atime;
    m_mtime = mtime ? mtime : m_mtime;
    m_ctime = ctime;
    ++m_version;
}

bool OpenInode::defer_times(std::optional<TimeNs> atime, std::optional<TimeNs> mtime,
                            TimeNs ctime) {
    LockGuard lock(m_mutex);
    // The commit that seals this staging file reads the times in its transaction, after the
    // seal: it sees these. (Once sealed, m_staging_fd is empty or a newer copy's.)
    if (!m_staging_fd) {
        return false;
    }
    m_atime = atime ? atime : m_atime;
    m_mtime = mtime ? mtime : m_mtime;
    m_ctime = ctime;
    ++m_version;
    return true;
}

Result<std::optional<PutResult>> OpenInode::seal_staging() {
    std::filesystem::path path;
    std::uint64_t version = 0;
    {
        ExclusiveLock io(m_io);  // an instant: waits out the changes in flight
        LockGuard lock(m_mutex);
        if (!m_staging_fd) {
            return std::nullopt;
        }
        path = m_staging_path;
        version = m_version;
    }
    // Hashing reads the whole file: no lock held, writes go on. A file that is only being
    // written to the end usually hashes once, the writes having stopped before close.
    auto sealed = m_pool.seal(path);
    if (!sealed) {
        return std::unexpected(sealed.error());
    }
    ExclusiveLock io(m_io);
    bool raced = false;
    {
        LockGuard lock(m_mutex);
        raced = m_version != version;
    }
    if (raced) {
        // A change began after the hash did: hash again, with changes held off this time.
        sealed = m_pool.seal(path);
        if (!sealed) {
            return std::unexpected(sealed.error());
        }
    }
    LockGuard lock(m_mutex);
    // Changes are held off here, so a write-back that failed while the file hashed is known.
    if (m_write_error != 0) {
        return make_error(m_write_error, fmt::format("a write to inode {} failed: its changes "
                                                     "are dropped",
                                                     m_ino));
    }
    m_sealed_fd = std::move(m_staging_fd);
    m_sealed_path = std::exchange(m_staging_path, {});
    return std::optional<PutResult>(*sealed);
}

Result<void> OpenInode::commit(VolumeTree& tree) {
    LockGuard serial(m_commit);
    auto sealed = seal_staging();
    if (!sealed || !*sealed) {
        return sealed ? Result<void>() : std::unexpected(sealed.error());
    }
    std::optional<ObjectId> object;
    if ((*sealed)->size > 0) {
        object = (*sealed)->id;
    }
    std::filesystem::path path;
    {
        LockGuard lock(m_mutex);
        path = m_sealed_path;
    }
    // Recording it takes LMDB's write lock, maybe behind other writers: no lock of this file is
    // held, so its reads and writes go on.
    std::uint64_t version = 0;
    auto updated = tree.set_content(m_ino, object, (*sealed)->size, path, [&](InodeRecord& r) {
        LockGuard lock(m_mutex);
        r.mtime = m_mtime.value_or(r.mtime);
        r.atime = m_atime.value_or(r.atime);
        r.ctime = m_ctime.value_or(r.ctime);
        version = m_version;
    });
    finish_commit(object, (*sealed)->size, updated.has_value(), version);
    if (!updated) {
        return std::unexpected(updated.error());
    }
    // The content this file had may be named by nothing now.
    TRY(tree.store().remove_dead_objects());
    return {};
}

void OpenInode::finish_commit(const std::optional<ObjectId>& object, std::uint64_t size,
                              bool recorded, std::uint64_t version) {
    std::filesystem::path sealed_path;
    {
        LockGuard lock(m_mutex);
        sealed_path = m_sealed_path;
    }
    // Only this commit (m_commit) touches the sealed file: look at it outside the lock.
    bool sealed_left = !recorded && ::access(sealed_path.c_str(), F_OK) == 0;
    bool superseded = false;
    {
        LockGuard lock(m_mutex);
        SharedFd sealed = std::move(m_sealed_fd);
        m_sealed_path.clear();
        if (recorded) {
            // The sealed file is now the object, or an identical copy of one: reads go on from
            // its fd.
            m_object = object;
            m_object_fd = object ? std::move(sealed) : nullptr;
            if (!m_staging_fd) {
                m_size = size;  // the bytes hashed are the truth
            }
            if (m_version == version) {
                // The volume has these times now; times of a later change stay pending.
                m_mtime.reset();
                m_atime.reset();
                m_ctime.reset();
            }
        } else if (m_staging_fd) {
            // A newer staging copy, made from the sealed one, holds these changes too.
            superseded = sealed_left;
        } else if (sealed_left) {
            // Still changed: the next commit tries again.
            m_staging_fd = std::move(sealed);
            m_staging_path = sealed_path;
        } else {
            // Lost with the failure: reads go back to the stored content.
            m_mtime.reset();
            m_atime.reset();
            m_ctime.reset();
        }
    }
    if (superseded) {
        ::unlink(sealed_path.c_str());
    }
}

void OpenInode::discard_changes() {
    LockGuard serial(m_commit);
    ExclusiveLock io(m_io);
    std::filesystem::path staged;
    {
        LockGuard lock(m_mutex);
        if (m_staging_fd) {
            staged = std::exchange(m_staging_path, {});
            m_staging_fd.reset();
        }
        m_write_error = 0;
        m_mtime.reset();
        m_atime.reset();
        m_ctime.reset();
    }
    if (!staged.empty()) {
        ::unlink(staged.c_str());
    }
}

Result<void> OpenInode::commit_durably(VolumeTree& tree) {
    if (auto committed = commit(tree); !committed) {
        return committed;
    }
    std::optional<ObjectId> object;
    {
        LockGuard lock(m_mutex);
        object = m_object;
    }
    if (object) {
        if (auto synced = sync_object(m_pool, *object); !synced) {
            return synced;
        }
    }
    return tree.store().env().sync();
}

}  // namespace fbfs
