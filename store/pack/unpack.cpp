#include "store/pack/unpack.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>
#include <unordered_set>
#include <utility>

#include "store/base/fd_io.h"
#include "store/base/printable.h"
#include "store/base/unique_fd.h"
#include "store/meta/snapshot_tables.h"
#include "store/meta/store.h"
#include "store/meta/volume_lock.h"
#include "store/meta/xattr.h"
#include "store/pack/pack_reader.h"

namespace fbfs {

namespace {

namespace fs = std::filesystem;

// A directory in tmp/ holding one unpack's object files while it runs, flock()ed for as long as
// it lives: one that nobody locks was left by a killed unpack (remove_abandoned() takes it).
// Removed, with what is left in it, on destruction. Move-only.
class WorkDir {
public:
    static Result<WorkDir> create(const fs::path& tmp) {
        for (int attempt = 0; attempt < 8; ++attempt) {
            std::string path = (tmp / "unpack-XXXXXX").string();
            if (::mkdtemp(path.data()) == nullptr) {
                return errno_error(fmt::format("cannot create a directory in {}", tmp.string()));
            }
            UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
            struct stat st {};
            // Another unpack may have taken it for abandoned before this one locked it.
            if (fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0 && ::fstat(fd.get(), &st) == 0 &&
                st.st_nlink > 0) {
                return WorkDir(std::move(fd), path);
            }
        }
        return make_error(
            EAGAIN, fmt::format("cannot keep a directory in {} (unpack again)", tmp.string()));
    }
    WorkDir(WorkDir&& other) noexcept
        : m_lock(std::move(other.m_lock)), m_path(std::exchange(other.m_path, {})) {}
    WorkDir& operator=(WorkDir&&) = delete;
    ~WorkDir() {
        std::error_code ec;
        if (!m_path.empty()) {
            fs::remove_all(m_path, ec);
        }
    }
    const fs::path& path() const { return m_path; }

private:
    WorkDir(UniqueFd lock, fs::path path) : m_lock(std::move(lock)), m_path(std::move(path)) {}
    UniqueFd m_lock;
    fs::path m_path;
};

// Removes the work directories of unpacks that were killed: those nobody holds locked.
void remove_abandoned(const fs::path& tmp) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(tmp, ec)) {
        if (!entry.path().filename().string().starts_with("unpack-") || !entry.is_directory(ec)) {
            continue;
        }
        UniqueFd fd(::open(entry.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
            fs::remove_all(entry.path(), ec);
        }
    }
}

std::unexpected<Error> served(const Store& store, const std::string& volume, pid_t pid) {
    return std::unexpected(VolumeLock::busy(store.root(), volume, pid,
                                            "unmount it with fbfs umount before unpacking"));
}

// Receives a pack's objects into temp files of the pool until commit().
// Whatever it has not handed to the pool when it goes is deleted.
class StoreSink : public PackSink {
public:
    StoreSink(Store& store, const std::vector<std::string>& only) : m_store(store), m_only(only) {}
    ~StoreSink() override {
        for (const auto& path : m_temps) {
            if (!path.empty()) {
                ::unlink(path.c_str());
            }
        }
    }

    Result<std::vector<bool>> begin(const PackContents& contents) override {
        TRY(check_only(contents));
        TRY(check_privileged_xattrs(contents));
        for (const auto& v : contents.volumes) {
            if (!selected(v.name)) {
                continue;
            }
            if (auto pid = VolumeLock::holder(m_store.root(), v.name)) {
                return served(m_store, v.name, *pid);
            }
        }
        m_needed = needed_objects(contents);
        TRY_ASSIGN(auto work, WorkDir::create(m_store.pool().tmp_dir()));
        m_work.emplace(std::move(work));
        m_temps.resize(contents.objects.size());
        std::vector<bool> wanted;
        for (std::size_t i = 0; i < contents.objects.size(); ++i) {
            wanted.push_back(m_needed[i] && !m_store.pool().contains(contents.objects[i].id));
        }
        return wanted;
    }

    // Whether volume `name` is unpacked (--only).
    bool selected(std::string_view name) const {
        return m_only.empty() || std::find(m_only.begin(), m_only.end(), name) != m_only.end();
    }
    // Whether object `index` of the pack is named by a volume being unpacked.
    bool needed(std::size_t index) const { return m_needed[index]; }

    Result<void> object_bytes(std::size_t index, std::string_view bytes) override {
        if (!m_file) {
            std::string path = (m_work->path() / std::to_string(index)).string();
            m_file = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
            if (!m_file) {
                return errno_error(fmt::format("cannot create {}", path));
            }
            m_temps[index] = path;
            m_size = 0;
        }
        return write_sparse(bytes, m_temps[index]);
    }

    Result<void> object_end(std::size_t index) override {
        if (!m_file) {  // an empty object
            if (auto ok = object_bytes(index, {}); !ok) {
                return ok;
            }
        }
        // The size, holes at the end included.
        if (::ftruncate(m_file.get(), static_cast<off_t>(m_size)) != 0) {
            return errno_error(fmt::format("cannot size {}", m_temps[index]));
        }
        if (::fchmod(m_file.get(), 0444) != 0) {
            return errno_error(fmt::format("cannot seal {}", m_temps[index]));
        }
        m_file = UniqueFd();
        return {};
    }

    // Replaces the volumes by the checked `contents` and moves the new objects into the pool,
    // in one transaction, with the volumes locked against mounts. Returns how many objects the
    // pool gained.
    Result<std::size_t> commit(const PackContents& contents) {
        std::vector<VolumeLock> locks;
        for (const auto& v : contents.volumes) {
            auto lock = VolumeLock::acquire(m_store.root(), v.name);
            if (!lock) {
                return lock.error().code == EBUSY
                           ? served(m_store, v.name,
                                    VolumeLock::holder(m_store.root(), v.name).value_or(0))
                           : std::unexpected(lock.error());
            }
            locks.push_back(std::move(*lock));
        }
        const ObjectPool& pool = m_store.pool();
        // (contents.volumes holds the selected volumes only; objects keep the pack's indices.)
        const auto& objects = contents.objects;
        std::vector<bool> published(objects.size());
        auto ok = m_store.env().write([&](LmdbTxn& txn) -> Result<void> {
            for (std::size_t i = 0; i < objects.size(); ++i) {
                if (published[i] || !m_needed[i] || pool.contains(objects[i].id)) {
                    continue;
                }
                if (m_temps[i].empty()) {
                    return make_error(EAGAIN, fmt::format("object {} left the store while "
                                                          "unpacking; unpack again",
                                                          objects[i].id.hex()));
                }
                TRY_ASSIGN(auto put, pool.publish(m_temps[i], objects[i].id, objects[i].size));
                published[i] = !put.deduped;
                m_temps[i].clear();
            }
            for (const auto& v : contents.volumes) {
                if (auto replaced = replace_volume(txn, m_store.tables(), v); !replaced) {
                    return replaced;
                }
            }
            return {};
        });
        if (!ok) {
            for (std::size_t i = 0; i < objects.size(); ++i) {
                if (published[i]) {
                    (void)m_store.remove_if_unreferenced(objects[i].id);
                }
            }
            return std::unexpected(ok.error());
        }
        return static_cast<std::size_t>(std::count(published.begin(), published.end(), true));
    }

private:
    // Appends `bytes` to the temp file, leaving out each whole block of zeros (one that starts
    // at a multiple of k_block in the file): the file has a hole there, as the packed file had
    // or as it could have, and object_end() sets the size.
    Result<void> write_sparse(std::string_view bytes, std::string_view what) {
        std::size_t data = 0;  // where the bytes not written yet start
        auto flush = [&](std::size_t end) {
            auto ok = pwrite_all(m_file.get(), bytes.substr(data, end - data),
                                 static_cast<off_t>(m_size + data), what);
            data = end;
            return ok;
        };
        for (std::size_t at = 0; at < bytes.size();) {
            std::size_t end = std::min(
                bytes.size(), at + k_block - static_cast<std::size_t>((m_size + at) % k_block));
            std::string_view block = bytes.substr(at, end - at);
            if (block.size() == k_block && block.front() == '\0' &&
                std::memcmp(block.data(), block.data() + 1, k_block - 1) == 0) {
                TRY(flush(at));
                data = end;
            }
            at = end;
        }
        TRY(flush(bytes.size()));
        m_size += bytes.size();
        return {};
    }

    static constexpr std::size_t k_block = 4096;

    // ext4 lets only a privileged caller set `trusted.` and `security.` attributes, and the
    // kernel holds a mount to the same rule: a user other than root could not have made them.
    // So such a user's unpack refuses a selected volume that has one, rather than install it.
    Result<void> check_privileged_xattrs(const PackContents& contents) const {
        if (::geteuid() == 0) {
            return {};
        }
        for (const auto& v : contents.volumes) {
            const SnapshotXattr* privileged = privileged_xattr(v);
            if (selected(v.name) && privileged != nullptr) {
                return make_error(
                    EPERM, fmt::format("volume '{}' of the pack has attribute '{}' on inode {}, "
                                       "which only root may set (unpack as root, or name the "
                                       "other volumes with --only); nothing was unpacked",
                                       printable(v.name), printable(privileged->xattr.name),
                                       privileged->ino));
            }
        }
        return {};
    }

    // A name of --only that the pack lacks is an error naming the volumes it has.
    Result<void> check_only(const PackContents& contents) const {
        for (const auto& name : m_only) {
            if (std::none_of(contents.volumes.begin(), contents.volumes.end(),
                             [&](const auto& v) { return v.name == name; })) {
                std::string held;
                for (const auto& v : contents.volumes) {
                    held += (held.empty() ? "" : ", ") + printable(v.name);
                }
                return make_error(ENOENT, fmt::format("the pack has no volume '{}' (it holds: {}); "
                                                      "nothing was unpacked",
                                                      printable(name), held));
            }
        }
        return {};
    }

    // Per object of the pack: whether a selected volume names it.
    std::vector<bool> needed_objects(const PackContents& contents) const {
        if (m_only.empty()) {
            return std::vector<bool>(contents.objects.size(), true);
        }
        std::unordered_set<ObjectId> named;
        for (const auto& v : contents.volumes) {
            for (const auto& [ino, record] : v.inodes) {
                if (selected(v.name) && record.object) {
                    named.insert(*record.object);
                }
            }
        }
        std::vector<bool> out;
        for (const auto& o : contents.objects) {
            out.push_back(named.contains(o.id));
        }
        return out;
    }

    Store& m_store;
    const std::vector<std::string>& m_only;  // --only: the volumes to unpack; empty: all
    std::vector<bool> m_needed;              // per object: named by a volume unpacked
    std::optional<WorkDir> m_work;           // from begin() on
    std::vector<std::string> m_temps;        // per object: its temp file until the pool has it
    UniqueFd m_file;                         // the temp file being written
    std::uint64_t m_size = 0;                // the bytes of its object received so far
};

}  // namespace

Result<UnpackSummary> unpack(Store& store, int fd, const ProgressFn& progress,
                             const std::vector<std::string>& only) {
    remove_abandoned(store.pool().tmp_dir());
    StoreSink sink(store, only);
    TRY_ASSIGN(auto read, read_pack(fd, sink, progress));
    PackContents& contents = read.contents;
    std::erase_if(contents.volumes, [&](const auto& v) { return !sink.selected(v.name); });
    if (::geteuid() != 0) {
        for (auto& v : contents.volumes) {
            for (auto& [ino, record] : v.inodes) {
                record.uid = ::geteuid();
                record.gid = ::getegid();
            }
        }
    }
    TRY_ASSIGN(auto added, sink.commit(contents));
    // The unpack is done; objects it left unnamed go now or at the next mount, so a failure
    // here is no failure of the unpack.
    (void)store.remove_dead_objects();
    UnpackSummary summary;
    summary.volumes = contents.volumes.size();
    summary.objects_added = added;
    for (const auto& v : contents.volumes) {
        summary.logical_bytes += logical_bytes(v);
    }
    for (std::size_t i = 0; i < contents.objects.size(); ++i) {
        summary.objects += sink.needed(i) ? 1 : 0;
        summary.object_bytes += sink.needed(i) ? contents.objects[i].size : 0;
    }
    summary.packed_bytes = read.packed_bytes;
    return summary;
}

}  // namespace fbfs
