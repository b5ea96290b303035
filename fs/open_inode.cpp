#include "fs/open_inode.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

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
        std::lock_guard lock(m_mutex);
        ++m_writers;
    }
    return truncate_it ? truncate(0) : Result<void>();
}

void OpenInode::release_writer() {
    std::lock_guard lock(m_mutex);
    m_writers -= m_writers > 0 ? 1 : 0;
}

bool OpenInode::has_writers() const {
    std::lock_guard lock(m_mutex);
    return m_writers > 0;
}

Result<SharedFd> OpenInode::data_fd() const {
    std::lock_guard lock(m_mutex);
    if (m_staging_fd) {
        return m_staging_fd;
    }
    if (!m_object) {
        return SharedFd();
    }
    if (!m_object_fd) {
        auto fd = m_pool.open_object(*m_object);
        if (!fd) {
            return std::unexpected(fd.error());
        }
        m_object_fd = std::make_shared<UniqueFd>(std::move(*fd));
    }
    return m_object_fd;
}

Result<void> OpenInode::ensure_staging() {
    if (m_staging_fd) {
        return {};
    }
    // An object never changes, so copying it to its end copies exactly m_size bytes.
    Result<UniqueFd> object = UniqueFd();
    if (m_object && m_size > 0) {
        object = m_pool.open_object(*m_object);
        if (!object) {
            return std::unexpected(object.error());
        }
    }
    auto staged =
        m_pool.copy_to_temp(*object ? object->get() : -1, fmt::format("staging-{}-", m_volume));
    if (!staged) {
        return std::unexpected(staged.error());
    }
    m_staging_path = std::move(staged->path);
    m_staging_fd = std::make_shared<UniqueFd>(std::move(staged->fd));
    return {};
}

void OpenInode::mark_changed() {
    m_mtime = m_ctime = now_ns();
}

Result<OpenInode::Write> OpenInode::begin_write() {
    std::shared_lock io(m_io);
    std::lock_guard lock(m_mutex);
    if (auto ok = ensure_staging(); !ok) {
        return std::unexpected(ok.error());
    }
    mark_changed();
    return Write{std::move(io), m_staging_fd};
}

void OpenInode::wrote(std::uint64_t end_offset) {
    std::lock_guard lock(m_mutex);
    m_size = std::max(m_size, end_offset);
}

Result<void> OpenInode::truncate(std::uint64_t size) {
    std::shared_lock io(m_io);
    std::lock_guard lock(m_mutex);
    if (size == 0 && !m_staging_fd) {
        m_object.reset();  // nothing to copy when all of it goes
        m_object_fd.reset();
    }
    if (auto ok = ensure_staging(); !ok) {
        return ok;
    }
    if (::ftruncate(m_staging_fd->get(), static_cast<off_t>(size)) != 0) {
        return errno_error("truncating a staging file");
    }
    m_size = size;
    mark_changed();
    return {};
}

Result<void> OpenInode::allocate(int mode, off_t offset, off_t length) {
    std::shared_lock io(m_io);
    std::lock_guard lock(m_mutex);
    if (auto ok = ensure_staging(); !ok) {
        return ok;
    }
    int fd = m_staging_fd->get();
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
    auto fd = data_fd();
    struct stat st {};
    if (!fd || !*fd || ::fstat((*fd)->get(), &st) != 0) {
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(st.st_blocks);
}

void OpenInode::overlay(InodeRecord& record) const {
    std::lock_guard lock(m_mutex);
    if (m_staging_fd) {
        record.size = m_size;
    }
    record.mtime = m_mtime.value_or(record.mtime);
    record.atime = m_atime.value_or(record.atime);
    record.ctime = m_ctime.value_or(record.ctime);
}

void OpenInode::set_times(std::optional<TimeNs> atime, std::optional<TimeNs> mtime, TimeNs ctime) {
    std::lock_guard lock(m_mutex);
    m_atime = atime ? atime : m_atime;
    m_mtime = mtime ? mtime : m_mtime;
    m_ctime = ctime;
}

Result<void> OpenInode::commit(VolumeTree& tree) {
    std::unique_lock io(m_io);
    std::lock_guard lock(m_mutex);
    if (!m_staging_fd) {
        return {};
    }
    std::optional<ObjectId> object;
    if (m_size > 0) {
        auto sealed = m_pool.seal(m_staging_path);
        if (!sealed) {
            return std::unexpected(sealed.error());
        }
        object = sealed->id;
        m_size = sealed->size;  // the bytes hashed are the truth
    }
    auto updated = tree.set_content(m_ino, object, m_size, m_staging_path, [&](InodeRecord& r) {
        r.mtime = m_mtime.value_or(r.mtime);
        r.atime = m_atime.value_or(r.atime);
        r.ctime = m_ctime.value_or(r.ctime);
    });
    if (!updated) {
        // The staging file stays (still changed) for a later commit, unless it is gone with
        // the failure; then these changes are lost and reads go back to the stored content.
        if (::access(m_staging_path.c_str(), F_OK) != 0) {
            drop_staging();
        }
        return std::unexpected(updated.error());
    }
    // The staging file is now the object, or an identical copy of one: reads go on from its fd,
    // and the next write starts a new staging copy.
    m_object = object;
    m_object_fd = object ? std::move(m_staging_fd) : nullptr;
    m_staging_fd.reset();
    m_mtime.reset();
    m_atime.reset();
    m_ctime.reset();
    // The content this file had may be named by nothing now.
    if (auto reaped = tree.store().remove_dead_objects(); !reaped) {
        return std::unexpected(reaped.error());
    }
    return {};
}

void OpenInode::drop_staging() {
    if (m_staging_fd) {
        ::unlink(m_staging_path.c_str());
        m_staging_fd.reset();
    }
    m_mtime.reset();
    m_atime.reset();
    m_ctime.reset();
}

void OpenInode::discard_changes() {
    std::unique_lock io(m_io);
    std::lock_guard lock(m_mutex);
    drop_staging();
}

Result<void> OpenInode::commit_durably(VolumeTree& tree) {
    if (auto committed = commit(tree); !committed) {
        return committed;
    }
    std::optional<ObjectId> object;
    {
        std::lock_guard lock(m_mutex);
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
