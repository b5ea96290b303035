#include "fs/filesystem.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>

#include <iterator>

namespace fbfs {

namespace {

constexpr std::size_t k_name_max = 255;
// From this size on a file's st_blocks is what its content takes on the store's disk, holes
// excluded, so `du`, `cp --sparse=auto` and `tar -S` (which look for holes only in files with
// fewer blocks than their size) see a sparse file as sparse. Smaller files skip the lookup; the
// pool stats each object once (ObjectPool::allocated_blocks).
constexpr std::uint64_t k_sparse_min = 64 * 1024;

Result<void> check_name(std::string_view name) {
    if (name.size() > k_name_max) {
        return make_error(ENAMETOOLONG, fmt::format("name longer than {} bytes", k_name_max));
    }
    return {};
}

// What the kernel drops when an unprivileged change could misuse the bits: setuid, and setgid
// where it marks privilege (with group execute; without, it marks mandatory locking). Returns
// whether anything went. Directories keep theirs.
bool drop_setid_bits(InodeRecord& r) {
    std::uint32_t before = r.mode;
    if (!r.is_dir()) {
        r.mode &= ~static_cast<std::uint32_t>(S_ISUID);
        if (r.mode & S_IXGRP) {
            r.mode &= ~static_cast<std::uint32_t>(S_ISGID);
        }
    }
    return r.mode != before;
}

}  // namespace

Filesystem::Filesystem(VolumeTree tree, std::optional<LowerLayer> lower)
    : m_tree(std::move(tree)), m_lower(std::move(lower)) {
    if (m_lower) {
        m_stamps = std::make_unique<StampBook>(m_tree, *m_lower, GitIndex::load(*m_lower));
        m_lower_counts_subdirs = counts_subdirs(*m_lower);
    }
}

Result<InodeRecord> Filesystem::record(InodeNumber ino) const {
    TRY_ASSIGN(auto got, m_tree.get(ino));
    if (!got) {
        return make_error(ENOENT, fmt::format("inode {} does not exist", ino));
    }
    InodeRecord r = std::move(*got);
    if (auto open = m_inodes.find_open(ino)) {
        open->overlay(r);
    }
    return r;
}

struct stat Filesystem::to_stat(InodeNumber ino, const InodeRecord& r) const {
    struct stat st {};
    st.st_ino = ino;
    st.st_mode = r.mode;
    st.st_nlink = r.nlink;
    st.st_uid = r.uid;
    st.st_gid = r.gid;
    st.st_rdev = r.rdev;
    st.st_size = static_cast<off_t>(r.is_symlink() ? r.symlink_target.size() : r.size);
    st.st_blksize = 4096;
    st.st_blocks = static_cast<blkcnt_t>((st.st_size + 511) / 512);
    if (r.is_reg() && r.size >= k_sparse_min) {
        st.st_blocks = static_cast<blkcnt_t>(stored_blocks(ino, r).value_or(st.st_blocks));
    }
    st.st_atim = to_timespec(r.atime);
    st.st_mtim = to_timespec(r.mtime);
    st.st_ctim = to_timespec(r.ctime);
    return st;
}

std::optional<std::uint64_t> Filesystem::stored_blocks(InodeNumber ino,
                                                       const InodeRecord& r) const {
    if (auto open = m_inodes.find_open(ino)) {
        return open->allocated_blocks();
    }
    return r.object ? pool().allocated_blocks(*r.object) : std::nullopt;
}

Filesystem::~Filesystem() {
    stop_watching();  // its thread reads m_lower and calls back into this object
}

Result<struct stat> Filesystem::lookup(InodeNumber parent, std::string_view name) {
    TRY(check_name(name));
    // The hot path of every build: one record read and one lstat for a lower file.
    auto dir = record(parent);
    if (!dir && dir.error().code != ENOENT) {
        return std::unexpected(dir.error());
    }
    std::optional<InodeNumber> found;
    if (dir) {
        TRY_ASSIGN(auto entry, m_tree.lookup(parent, name));
        if (entry && entry->is_whiteout()) {
            return make_error(ENOENT, fmt::format("no entry '{}'", name));
        }
        if (entry) {
            found = entry->ino;
        }
    }
    std::string path = child_path(parent, name);
    std::optional<Node> lower_only;
    bool opaque = dir && (dir->flags & InodeRecord::k_opaque);
    if (!found && m_lower && !opaque && (parent == k_root_inode || m_inodes.path_of(parent))) {
        // A missing lower parent directory makes this lstat fail too.
        if (auto st = m_lower->stat(path)) {
            found = lower_ino(path, st->st_mode);
            lower_only = Node{*found, path, std::nullopt, *st};
        }
    }
    if (!found) {
        return make_error(ENOENT, fmt::format("no entry '{}'", name));
    }
    m_inodes.remember(*found, path);
    auto node = lower_only ? Result<Node>(*lower_only) : resolve(*found);
    auto st = node ? attr(*node) : std::unexpected(node.error());
    if (!st) {
        m_inodes.forget(*found, 1);
    }
    return st;
}

void Filesystem::forget(InodeNumber ino, std::uint64_t count) {
    if (m_inodes.forget(ino, count)) {
        if (auto dropped = drop_if_unused(ino); !dropped) {
            spdlog::warn("dropping inode {}: {}", ino, dropped.error().message);
        }
    }
}

Result<void> Filesystem::drop_if_unused(InodeNumber ino) {
    if (!m_inodes.unused(ino)) {
        return {};
    }
    // A read first: most forgotten inodes still have links, and need no write transaction.
    TRY_ASSIGN(auto r, m_tree.get(ino));
    if (!r || r->nlink > 0) {
        return {};
    }
    return drop(ino);
}

Result<void> Filesystem::drop(InodeNumber ino) {
    TRY(m_tree.drop(ino));
    // Its content may be named by nothing now: give the space back.
    TRY(m_tree.store().remove_dead_objects());
    return {};
}

Result<struct stat> Filesystem::make_node(InodeNumber parent, std::string_view name, InodeRecord r,
                                          const Caller& caller) {
    TRY(check_name(name));
    TRY_ASSIGN(auto dir_node, resolve(parent));
    TRY(check_free(dir_node, name));
    TRY(copy_up(parent));
    // A directory made where a whiteout hides a lower one must not show the lower contents.
    if (r.is_dir() && merges_lower(dir_node)) {
        auto whiteout = m_tree.lookup(parent, name);
        if (whiteout && *whiteout && (*whiteout)->is_whiteout()) {
            r.flags |= InodeRecord::k_opaque;
        }
    }
    TRY_ASSIGN(auto dir, record(parent));
    r.uid = caller.uid;
    r.gid = caller.gid;
    // A set-group-ID directory gives its group to new entries, and its bit to new directories.
    if (dir.mode & S_ISGID) {
        r.gid = dir.gid;
        if (r.is_dir()) {
            r.mode |= S_ISGID;
        }
    }
    r.atime = r.mtime = r.ctime = now_ns();
    TRY_ASSIGN(auto made, m_tree.create(parent, name, std::move(r)));
    m_inodes.remember(made.ino, child_path(parent, name));
    return to_stat(made.ino, made.record);
}

Result<struct stat> Filesystem::mknod(InodeNumber parent, std::string_view name, std::uint32_t mode,
                                      std::uint64_t rdev, const Caller& caller) {
    InodeRecord r;
    r.mode = mode;
    r.rdev = rdev;
    return make_node(parent, name, std::move(r), caller);
}

Result<struct stat> Filesystem::mkdir(InodeNumber parent, std::string_view name, std::uint32_t mode,
                                      const Caller& caller) {
    InodeRecord r;
    r.mode = S_IFDIR | (mode & 07777);
    return make_node(parent, name, std::move(r), caller);
}

Result<struct stat> Filesystem::symlink(std::string_view target, InodeNumber parent,
                                        std::string_view name, const Caller& caller) {
    if (target.size() >= PATH_MAX) {
        return make_error(ENAMETOOLONG, "symlink target too long");
    }
    InodeRecord r;
    r.mode = S_IFLNK | 0777;
    r.symlink_target = std::string(target);
    r.size = target.size();
    return make_node(parent, name, std::move(r), caller);
}

Result<struct stat> Filesystem::link(InodeNumber ino, InodeNumber parent, std::string_view name) {
    TRY(check_name(name));
    TRY_ASSIGN(auto dir, resolve(parent));
    TRY(check_free(dir, name));
    TRY(copy_up(ino));
    TRY(copy_up(parent));
    TRY_ASSIGN(auto linked, m_tree.link(ino, parent, name));
    // The record as the link wrote it, with what only an open file knows: nothing after this
    // can fail, so the lookup is counted only for an entry the reply will carry.
    InodeRecord r = std::move(linked);
    if (auto open = m_inodes.find_open(ino)) {
        open->overlay(r);
    }
    m_inodes.remember(ino, child_path(parent, name));
    return to_stat(ino, r);
}

Result<struct stat> Filesystem::getattr(InodeNumber ino) {
    TRY_ASSIGN(auto node, resolve(ino));
    return attr(node);
}

Result<struct stat> Filesystem::setattr(InodeNumber ino, const AttrChange& change,
                                        const Caller& caller) {
    (void)caller;  // the kernel checked permissions (default_permissions)
    TRY(copy_up(ino));
    TimeNs now = now_ns();
    if (change.size) {
        TRY(truncate(ino, *change.size));
    }
    // An open file learns the times first: a commit recording its content in between then
    // writes these, not older ones, and the update below writes them again.
    TimeNs ctime = change.ctime.value_or(now);
    auto open = m_inodes.find_open(ino);
    bool times_only =
        !change.mode && !change.uid && !change.gid && !change.size && !change.drop_setid;
    if (times_only && open && open->defer_times(change.atime, change.mtime, ctime)) {
        return getattr(ino);  // saved by the commit of the file's unsaved changes
    }
    if (open) {
        open->set_times(change.atime, change.mtime, ctime);
    }
    auto updated = m_tree.update(ino, [&](InodeRecord& r) -> Result<void> {
        if (change.mode) {
            r.mode = (r.mode & S_IFMT) | (*change.mode & 07777);
        }
        if (change.drop_setid) {
            drop_setid_bits(r);
        }
        if (change.uid) {
            r.uid = *change.uid;
        }
        if (change.gid) {
            r.gid = *change.gid;
        }
        if (change.atime) {
            r.atime = *change.atime;
        }
        if (change.mtime) {
            r.mtime = *change.mtime;
        }
        r.ctime = ctime;
        return {};
    });
    TRY(updated);
    return getattr(ino);
}

Result<void> Filesystem::drop_setid(InodeNumber ino) {
    TRY_ASSIGN(auto current, record(ino));
    InodeRecord dropped = current;
    if (!drop_setid_bits(dropped)) {
        return {};
    }
    AttrChange change;
    change.drop_setid = true;
    TRY(setattr(ino, change, Caller{}));
    // No reply carries the new mode: the kernel would show the bits it cached.
    if (m_kernel != nullptr) {
        m_kernel->forget_attributes(ino);
    }
    return {};
}

Result<void> Filesystem::truncate(InodeNumber ino, std::uint64_t size) {
    TRY_ASSIGN(auto current, record(ino));
    if (current.is_dir()) {
        return make_error(EISDIR, "cannot truncate a directory");
    }
    // Through the file's OpenInode, registered for the while even if nobody has it open.
    TRY_ASSIGN(auto inode, open_inode(ino));
    auto cut = inode->truncate(size);
    if (cut && !inode->has_writers()) {
        cut = inode->commit(m_tree);
    }
    m_inodes.release(ino);
    return cut;
}

Result<std::string> Filesystem::readlink(InodeNumber ino) {
    TRY_ASSIGN(auto node, resolve(ino));
    if (!node.upper) {
        return m_lower->readlink(node.path);
    }
    if (!node.upper->is_symlink()) {
        return make_error(EINVAL, "not a symlink");
    }
    return node.upper->symlink_target;
}

Result<void> Filesystem::unlink(InodeNumber parent, std::string_view name) {
    return remove_entry(parent, name, false);
}

Result<void> Filesystem::rmdir(InodeNumber parent, std::string_view name) {
    return remove_entry(parent, name, true);
}

Result<void> Filesystem::remove_entry(InodeNumber parent, std::string_view name, bool dir) {
    TRY_ASSIGN(auto parent_node, resolve(parent));
    auto below = lower_child(parent_node, name);
    TRY_ASSIGN(auto entry, parent_node.upper ? m_tree.lookup(parent, name)
                                             : Result<std::optional<DirentValue>>(std::nullopt));
    bool in_upper = entry && !entry->is_whiteout();
    bool in_lower = below && !(entry && entry->is_whiteout());
    if (!in_upper && !in_lower) {
        return make_error(ENOENT, fmt::format("no entry '{}'", name));
    }
    if (dir && in_lower) {
        // A directory that shows lower entries is not empty, whatever its upper part holds.
        auto child =
            resolve(in_upper ? entry->ino : lower_ino(child_path(parent, name), below->st_mode));
        if (child && !child->path.empty()) {
            TRY(check_empty(*child));
        }
    }
    TRY(copy_up(parent));
    if (!in_upper) {
        if (S_ISDIR(below->st_mode) != dir) {
            return make_error(dir ? ENOTDIR : EISDIR, fmt::format("'{}' has the wrong type", name));
        }
        TRY(m_tree.add_whiteout(parent, name));
        // The kernel may still ask about the inode (a ctime update): it must not come back.
        m_inodes.clear_path(lower_ino(child_path(parent, name), below->st_mode));
        return {};
    }
    // A file is kept as an orphan while the kernel or a handle may still use it.
    TRY_ASSIGN(auto removed, m_tree.remove(parent, name, dir, in_lower, !dir));
    if (!dir && removed.record.nlink == 0 && m_inodes.unused(removed.ino)) {
        return drop(removed.ino);
    }
    return {};
}

Result<void> Filesystem::rename(InodeNumber parent, std::string_view name, InodeNumber new_parent,
                                std::string_view new_name, unsigned flags) {
    TRY(check_name(new_name));
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
        return make_error(EINVAL, "unsupported rename flags");
    }
    TRY_ASSIGN(auto moved, m_lower ? prepare_rename(parent, name, new_parent, new_name, flags)
                                   : Result<RenamePlan>(RenamePlan{}));
    // One transaction with what the overlay needs (a whiteout, an opaque directory): a crash
    // can never leave the entry moved and a lower file showing again at its old name.
    TRY_ASSIGN(auto replaced, m_tree.rename(parent, name, new_parent, new_name, flags,
                                            [](InodeNumber) { return true; },
                                            {moved.whiteout_source, moved.opaque}));
    if (m_lower) {
        finish_rename(moved, parent, name, new_parent, new_name);
    }
    if (replaced && replaced->record.nlink == 0 && m_inodes.unused(replaced->ino)) {
        return drop(replaced->ino);
    }
    return {};
}

Result<std::shared_ptr<OpenInode>> Filesystem::open_inode(InodeNumber ino) {
    Error failure;
    auto inode = m_inodes.open(ino, [&]() -> std::shared_ptr<OpenInode> {
        auto r = m_tree.get(ino);
        if (!r || !*r) {
            failure = r ? Error{ENOENT, fmt::format("inode {} does not exist", ino)} : r.error();
            return nullptr;
        }
        return std::make_shared<OpenInode>(ino, m_tree.id(), pool(), **r);
    });
    return inode ? Result<std::shared_ptr<OpenInode>>(inode) : std::unexpected(failure);
}

Result<std::unique_ptr<FileHandle>> Filesystem::open(InodeNumber ino, int flags) {
    bool writable = (flags & O_ACCMODE) != O_RDONLY;
    TRY_ASSIGN(auto node, resolve(ino));
    if (node.is_dir()) {
        return make_error(EISDIR, "is a directory");
    }
    if (!node.upper && !writable && !(flags & O_TRUNC)) {
        return open_lower(node);
    }
    TRY(copy_up(ino));
    TRY_ASSIGN(auto inode, open_inode(ino));
    auto handle = std::make_unique<FileHandle>();
    handle->ino = ino;
    handle->writable = writable;
    handle->inode = std::move(inode);
    if ((flags & O_ACCMODE) != O_WRONLY && !(flags & O_TRUNC)) {
        handle->inode->note_read();
    }
    if (handle->writable) {
        if (auto ok = handle->inode->open_writer((flags & O_TRUNC) != 0); !ok) {
            release(std::move(handle));
            return std::unexpected(ok.error());
        }
    }
    return handle;
}

Result<Filesystem::Created> Filesystem::create(InodeNumber parent, std::string_view name,
                                               std::uint32_t mode, int flags,
                                               const Caller& caller) {
    TRY_ASSIGN(auto attr, mknod(parent, name, S_IFREG | (mode & 07777), 0, caller));
    auto handle = open(attr.st_ino, flags & ~O_TRUNC);
    if (!handle) {
        forget(attr.st_ino, 1);
        return std::unexpected(handle.error());
    }
    return Created{attr, std::move(*handle)};
}

Result<void> Filesystem::flush(FileHandle& handle) {
    // close(2) waits for FLUSH, not for RELEASE: committing here means a closed file's bytes
    // are in the pool when close returns, and a killed daemon loses none of them.
    return handle.writable ? handle.inode->commit(m_tree) : Result<void>();
}

void Filesystem::prefill(InodeNumber ino) {
    constexpr std::uint64_t k_largest = 64 * 1024;  // depfiles, not objects
    if (m_kernel == nullptr || m_prefill_budget.load(std::memory_order_relaxed) == 0 ||
        m_inodes.find_open(ino)) {
        return;
    }
    auto r = record(ino);
    if (!r || !r->is_reg() || !r->object || r->size > k_largest) {
        return;  // a lower file, a directory, an empty or a large file
    }
    auto fd = pool().open_object(*r->object);
    if (!fd) {
        return;
    }
    std::string bytes(r->size, '\0');
    if (::pread(fd->get(), bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) {
        return;
    }
    auto budget = m_prefill_budget.load(std::memory_order_relaxed);
    while (budget >= bytes.size() &&
           !m_prefill_budget.compare_exchange_weak(budget, budget - bytes.size())) {
    }
    if (budget >= bytes.size()) {
        m_kernel->store_pages(ino, bytes);
    }
}

Result<void> Filesystem::fsync(FileHandle& handle) {
    return handle.inode ? handle.inode->commit_durably(m_tree) : Result<void>();
}

void Filesystem::release(std::unique_ptr<FileHandle> handle) {
    if (!handle->inode) {
        return;  // a lower file: nothing of it is in the volume
    }
    if (handle->writable) {
        handle->inode->release_writer();
        if (auto committed = handle->inode->commit(m_tree); !committed) {
            spdlog::error("saving inode {}: {}", handle->ino, committed.error().message);
            if (!handle->inode->has_writers()) {
                handle->inode->discard_changes();
            }
        }
    }
    if (m_inodes.release(handle->ino)) {
        if (auto dropped = drop_if_unused(handle->ino); !dropped) {
            spdlog::warn("dropping inode {}: {}", handle->ino, dropped.error().message);
        }
    }
}

Result<void> Filesystem::fallocate(FileHandle& handle, int mode, off_t offset, off_t length) {
    // ext4's modes that FUSE passes on. The kernel refuses COLLAPSE_RANGE, INSERT_RANGE,
    // UNSHARE_RANGE and WRITE_ZEROES itself (EOPNOTSUPP) before they get here, and PUNCH_HOLE
    // without KEEP_SIZE too.
    constexpr int k_zero = FALLOC_FL_ZERO_RANGE;
    constexpr int k_keep = FALLOC_FL_KEEP_SIZE;
    bool known = mode == 0 || mode == k_keep || mode == (FALLOC_FL_PUNCH_HOLE | k_keep) ||
                 mode == k_zero || mode == (k_zero | k_keep);
    if (!known) {
        return make_error(EOPNOTSUPP, fmt::format("fallocate mode {:#x} is not supported", mode));
    }
    if (!handle.inode || !handle.writable) {
        return make_error(EBADF, "the file is not open for writing");
    }
    return handle.inode->allocate(mode, offset, length);
}

Result<off_t> Filesystem::seek(FileHandle& handle, off_t offset, int whence) {
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        return make_error(EINVAL, "only SEEK_DATA and SEEK_HOLE reach the filesystem");
    }
    if (handle.lower) {
        off_t found = ::lseek(handle.lower->get(), offset, whence);
        return found >= 0 ? Result<off_t>(found) : errno_error("seeking in a source file");
    }
    if (m_kernel != nullptr && handle.inode->has_writers()) {
        // Under the writeback cache the kernel may hold written pages it has not sent: dropping
        // its pages of the file writes those back first (as WRITEs that other worker threads
        // answer; this one holds no lock meanwhile), so the answer covers every byte. Only the
        // limit of libfuse's loop (ten workers) could stall it, with ten such seeks at once.
        m_kernel->forget_inode(handle.ino);
    }
    return handle.inode->seek(offset, whence);
}

Result<std::unique_ptr<DirHandle>> Filesystem::opendir(InodeNumber ino) {
    TRY_ASSIGN(auto node, resolve(ino));
    if (!node.is_dir()) {
        return make_error(ENOTDIR, "not a directory");
    }
    TRY_ASSIGN(auto entries, merged_entries(node));
    auto handle = std::make_unique<DirHandle>();
    handle->cacheable = !merges_lower(node) || source_watched();
    handle->entries.reserve(entries.size() + 2);
    handle->entries.push_back({".", ino, DT_DIR});
    // The kernel answers ".." itself; the entry only needs a non-zero inode to be listed.
    handle->entries.push_back({"..", k_root_inode, DT_DIR});
    std::move(entries.begin(), entries.end(), std::back_inserter(handle->entries));
    return handle;
}

Result<struct statvfs> Filesystem::statfs() const {
    struct statvfs st {};
    if (::statvfs(m_tree.store().root().c_str(), &st) != 0) {
        return errno_error("statfs of the store");
    }
    st.f_namemax = k_name_max;
    return st;
}

}  // namespace fbfs
