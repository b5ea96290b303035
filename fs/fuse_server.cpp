#include "fs/fuse_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "fs/fuse_device.h"
#include "fs/killpriv_channel.h"
#include "fs/listing_reply.h"
#include "fs/request_guard.h"

namespace fbfs {

namespace {

constexpr unsigned k_max_write = 1u << 20;

Filesystem& fs_of(fuse_req_t req) {
    return *static_cast<Filesystem*>(fuse_req_userdata(req));
}

FileHandle& file_of(fuse_file_info* fi) {
    return *reinterpret_cast<FileHandle*>(fi->fh);
}
DirHandle& dir_of(fuse_file_info* fi) {
    return *reinterpret_cast<DirHandle*>(fi->fh);
}

Caller caller_of(fuse_req_t req) {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    return Caller{ctx->uid, ctx->gid};
}

void reply_error(fuse_req_t req, const Error& error) {
    if (error.code != ENOENT) {
        spdlog::debug("request failed: {}", error.message);
    }
    fuse_reply_err(req, error.code);
}

fuse_entry_param entry_of(fuse_req_t req, const struct stat& st) {
    return entry_param(fs_of(req), st);
}

void reply_entry(fuse_req_t req, const Result<struct stat>& st) {
    if (!st) {
        return reply_error(req, st.error());
    }
    fuse_entry_param e = entry_of(req, *st);
    if (fuse_reply_entry(req, &e) != 0) {
        // The kernel never saw the entry (the request was interrupted): undo its count.
        after_reply("entry", [&] { fs_of(req).forget(st->st_ino, 1); });
    }
}

void reply_attr(fuse_req_t req, const Result<struct stat>& st) {
    if (!st) {
        return reply_error(req, st.error());
    }
    fuse_reply_attr(req, &*st, fs_of(req).cache_timeout(st->st_ino));
}

void reply_void(fuse_req_t req, const Result<void>& done) {
    fuse_reply_err(req, done ? 0 : done.error().code);
}

// ---- handlers ---------------------------------------------------------------------------------

void on_init(void* userdata, fuse_conn_info* conn) {
    auto want = [conn](unsigned cap) {
        if (conn->capable & cap) {
            conn->want |= cap;
        }
    };
    // With the writeback cache the kernel keeps a regular file's size and mtime as its own and
    // ignores the server's, even after a notification: right when every change comes through
    // the mount, wrong for an overlay's source files, which the user may change behind it.
    // FBFS_WRITEBACK=on|off overrides this, for measuring what the cache is worth
    // (scripts/bench/writeback); "on" is unsafe for an overlay whose source changes.
    bool writeback = !static_cast<Filesystem*>(userdata)->has_lower();
    if (const char* knob = std::getenv("FBFS_WRITEBACK"); knob != nullptr) {
        writeback = std::string_view(knob) == "on";
    }
    if (writeback) {
        want(FUSE_CAP_WRITEBACK_CACHE);
    }
    want(FUSE_CAP_SPLICE_WRITE);
    want(FUSE_CAP_SPLICE_MOVE);
    want(FUSE_CAP_SPLICE_READ);
    // READDIRPLUS for every listing, not only its first request (READDIRPLUS_AUTO): a mount's
    // warm-up fills the kernel's caches through it, and builds stat what they list.
    want(FUSE_CAP_READDIRPLUS);
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
    // A symlink never changes in place (a new target is a new symlink, which the watch reports
    // for the source), so the kernel may keep what readlink said.
    want(FUSE_CAP_CACHE_SYMLINKS);
    conn->max_write = k_max_write;
    conn->max_readahead = k_max_write;
}

void on_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    auto st = fs_of(req).lookup(parent, name);
    if (!st && st.error().code == ENOENT) {
        // A negative entry: the kernel may remember that the name does not exist.
        fuse_entry_param e{};
        e.entry_timeout = fs_of(req).negative_timeout(parent, name);
        fuse_reply_entry(req, &e);
        return;
    }
    reply_entry(req, st);
}

void on_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    fs_of(req).forget(ino, nlookup);
    fuse_reply_none(req);
}

// Each entry is forgotten on its own: one that fails must not leave the others' lookups counted.
void on_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
    each_or_log("forget_multi", count,
                [&](std::size_t i) { fs_of(req).forget(forgets[i].ino, forgets[i].nlookup); });
    fuse_reply_none(req);
}

void on_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
    reply_attr(req, fs_of(req).getattr(ino));
}

TimeNs time_of(const struct timespec& ts) {
    return to_ns(ts);
}

void on_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
    AttrChange change;
    if (to_set & FUSE_SET_ATTR_MODE) {
        change.mode = attr->st_mode;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        change.uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        change.gid = attr->st_gid;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        change.size = static_cast<std::uint64_t>(attr->st_size);
    }
    TimeNs now = now_ns();
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
        change.atime = now;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
        change.atime = time_of(attr->st_atim);
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
        change.mtime = now;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
        change.mtime = time_of(attr->st_mtim);
    }
    if (to_set & FUSE_SET_ATTR_CTIME) {
        change.ctime = time_of(attr->st_ctim);
    }
    // With FUSE_HANDLE_KILLPRIV_V2 the kernel leaves dropping setuid/setgid on chown and on
    // truncation to the server, and says so with this bit (libfuse passes it through).
    change.drop_setid = (to_set & k_setattr_drop_setid) != 0;
    reply_attr(req, fs_of(req).setattr(ino, change, caller_of(req)));
}

void on_readlink(fuse_req_t req, fuse_ino_t ino) {
    auto target = fs_of(req).readlink(ino);
    if (!target) {
        return reply_error(req, target.error());
    }
    fuse_reply_readlink(req, target->c_str());
}

void on_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
    reply_entry(req, fs_of(req).mknod(parent, name, mode, rdev, caller_of(req)));
}

void on_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
    reply_entry(req, fs_of(req).mkdir(parent, name, mode, caller_of(req)));
}

void on_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
    reply_void(req, fs_of(req).unlink(parent, name));
}

void on_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
    reply_void(req, fs_of(req).rmdir(parent, name));
}

void on_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
    reply_entry(req, fs_of(req).symlink(target, parent, name, caller_of(req)));
}

void on_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
               const char* new_name, unsigned flags) {
    reply_void(req, fs_of(req).rename(parent, name, new_parent, new_name, flags));
}

void on_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
    reply_entry(req, fs_of(req).link(ino, new_parent, new_name));
}

void set_handle(fuse_file_info* fi, std::unique_ptr<FileHandle> handle) {
    // Objects never change in place and every write goes through this mount, so cached pages
    // stay right across opens; a lower file says whether it changed since it was last opened.
    fi->keep_cache = handle->keep_cache ? 1 : 0;
    // Closing a read-only handle commits nothing: the kernel may skip its FLUSH round trip.
    fi->noflush = handle->writable ? 0 : 1;
    fi->fh = reinterpret_cast<std::uint64_t>(handle.release());
}

// A truncating open(2) or a write(2) that the kernel sends through (not from its page cache): the
// kernel flags these FUSE_OPEN_KILL_SUIDGID and FUSE_WRITE_KILL_SUIDGID for a caller without
// CAP_FSETID and leaves dropping setuid and setgid to the server (killpriv_channel.h). libfuse
// 3.14 does not pass those flags on; a caller other than root stands for them.
Result<void> drop_setid_for(fuse_req_t req, fuse_ino_t ino) {
    if (caller_of(req).uid == 0 || !killpriv_v2_active()) {
        return {};
    }
    return fs_of(req).drop_setid(ino);
}

void on_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    auto handle = fs_of(req).open(ino, fi->flags);
    if (!handle) {
        return reply_error(req, handle.error());
    }
    if (fi->flags & O_TRUNC) {
        if (auto dropped = drop_setid_for(req, ino); !dropped) {
            fs_of(req).release(std::move(*handle));
            return reply_error(req, dropped.error());
        }
    }
    set_handle(fi, std::move(*handle));
    if (fuse_reply_open(req, fi) != 0) {
        after_reply("open", [&] { fs_of(req).release(std::unique_ptr<FileHandle>(&file_of(fi))); });
    }
}

void on_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
    auto created = fs_of(req).create(parent, name, mode, fi->flags, caller_of(req));
    if (!created) {
        return reply_error(req, created.error());
    }
    set_handle(fi, std::move(created->handle));
    fuse_entry_param e = entry_of(req, created->attr);
    if (fuse_reply_create(req, &e, fi) != 0) {
        after_reply("create", [&] {
            fs_of(req).release(std::unique_ptr<FileHandle>(&file_of(fi)));
            fs_of(req).forget(e.ino, 1);
        });
    }
}

void on_read(fuse_req_t req, fuse_ino_t, size_t size, off_t offset, fuse_file_info* fi) {
    FileHandle& handle = file_of(fi);
    auto fd = handle.inode ? handle.inode->data_fd() : Result<SharedFd>(handle.lower);
    if (!fd) {
        return reply_error(req, fd.error());
    }
    if (!*fd) {
        fuse_reply_buf(req, nullptr, 0);
        return;
    }
    // Spliced from the data file's fd: the bytes never pass through this process.
    fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
    buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    buf.buf[0].fd = (*fd)->get();
    buf.buf[0].pos = offset;
    fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void on_write_buf(fuse_req_t req, fuse_ino_t ino, fuse_bufvec* in, off_t offset,
                  fuse_file_info* fi) {
    FileHandle& handle = file_of(fi);
    if (!handle.inode) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (!fi->writepage) {
        if (auto dropped = drop_setid_for(req, ino); !dropped) {
            return reply_error(req, dropped.error());
        }
    }
    ssize_t written = 0;
    {
        auto write = handle.inode->begin_write();
        if (!write) {
            return reply_error(req, write.error());
        }
        fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
        out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
        out.buf[0].fd = write->fd->get();
        out.buf[0].pos = offset;
        auto wanted = static_cast<ssize_t>(fuse_buf_size(in));
        written = fuse_buf_copy(&out, in, fuse_buf_copy_flags{});
        // The kernel takes a short reply to a write-back (writeback cache) as complete and drops
        // the rest, and the writer learns nothing until close: such a write fails whole. Copying
        // the rest (both bufvecs have advanced) names the error that cut it short (a full disk),
        // and the file, now torn, is kept from being committed. A short reply to a direct write
        // reaches the writer as a short count, as POSIX has it.
        while (fi->writepage && written > 0 && written < wanted) {
            ssize_t more = fuse_buf_copy(&out, in, fuse_buf_copy_flags{});
            written = more > 0 ? written + more : (more < 0 ? more : -EIO);
        }
        if (written > 0) {
            // Still inside the write: a commit must see the size with these bytes.
            handle.inode->wrote(static_cast<std::uint64_t>(offset + written));
        } else if (written < 0 && fi->writepage) {
            handle.inode->write_failed(static_cast<int>(-written));
        }
    }
    if (written < 0) {
        fuse_reply_err(req, static_cast<int>(-written));
        return;
    }
    fuse_reply_write(req, static_cast<size_t>(written));
}

void on_flush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    reply_void(req, fs_of(req).flush(file_of(fi)));
}

void on_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    fs_of(req).release(std::unique_ptr<FileHandle>(&file_of(fi)));
    fuse_reply_err(req, 0);
}

void on_fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
    reply_void(req, fs_of(req).fsync(file_of(fi)));
}

void on_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t offset, off_t length,
                  fuse_file_info* fi) {
    reply_void(req, fs_of(req).fallocate(file_of(fi), mode, offset, length));
}

// ---- extended attributes ---------------------------------------------------------------------

// getxattr(2) and listxattr(2) answers: with `size` 0 the length; the bytes if they fit; else
// ERANGE.
void reply_xattr(fuse_req_t req, const Result<std::string>& bytes, size_t size) {
    if (!bytes) {
        return reply_error(req, bytes.error());
    }
    if (size == 0) {
        fuse_reply_xattr(req, bytes->size());
    } else if (bytes->size() > size) {
        fuse_reply_err(req, ERANGE);
    } else {
        fuse_reply_buf(req, bytes->data(), bytes->size());
    }
}

void on_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                 int flags) {
    reply_void(req, fs_of(req).setxattr(ino, name, std::string_view(value, size), flags));
}

void on_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
    reply_xattr(req, fs_of(req).getxattr(ino, name), size);
}

void on_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
    auto names = fs_of(req).listxattr(ino, caller_of(req));
    if (!names) {
        return reply_error(req, names.error());
    }
    std::string list;
    for (const auto& name : *names) {
        list.append(name).push_back('\0');
    }
    reply_xattr(req, list, size);
}

void on_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
    reply_void(req, fs_of(req).removexattr(ino, name));
}

void on_lseek(fuse_req_t req, fuse_ino_t, off_t offset, int whence, fuse_file_info* fi) {
    auto found = fs_of(req).seek(file_of(fi), offset, whence);
    if (!found) {
        return reply_error(req, found.error());
    }
    fuse_reply_lseek(req, *found);
}

void on_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    // When every listing may be cached, the kernel need not open directories at all: ENOSYS
    // tells it to stop sending OPENDIR and RELEASEDIR, and to cache every listing (which any
    // change through the mount, or from the watched source, drops).
    if (fs_of(req).listings_always_cacheable()) {
        fuse_reply_err(req, ENOSYS);
        return;
    }
    auto dir = fs_of(req).opendir(ino);
    if (!dir) {
        return reply_error(req, dir.error());
    }
    fi->cache_readdir = (*dir)->cacheable ? 1 : 0;
    fi->keep_cache = fi->cache_readdir;
    fi->fh = reinterpret_cast<std::uint64_t>(dir->release());
    if (fuse_reply_open(req, fi) != 0) {
        delete &dir_of(fi);
    }
}

// While it lives, this thread runs at the low priority of the daemon's background warm-up, if
// `req` is one of its requests: the lookups of a READDIRPLUS must not compete with the build.
class WarmUpPriority {
public:
    explicit WarmUpPriority(fuse_req_t req)
        : m_on(fuse_req_ctx(req)->pid == fs_of(req).background_caller().load() &&
               fuse_req_ctx(req)->pid != 0) {
        if (m_on) {
            errno = 0;
            m_old = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
            m_on =
                errno == 0 && ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 10) == 0;
        }
    }
    ~WarmUpPriority() {
        if (m_on) {
            ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), m_old);
        }
    }
    WarmUpPriority(const WarmUpPriority&) = delete;
    WarmUpPriority& operator=(const WarmUpPriority&) = delete;

private:
    bool m_on;
    int m_old = 0;
};

void read_dir(fuse_req_t req, fuse_ino_t dir_ino, size_t size, off_t offset, fuse_file_info* fi,
              bool plus) {
    WarmUpPriority priority(req);
    // Without OPENDIR (see on_opendir) there is no handle: list the directory for this call.
    std::unique_ptr<DirHandle> listed;
    if (fi->fh == 0) {
        auto opened = fs_of(req).opendir(dir_ino);
        if (!opened) {
            return reply_error(req, opened.error());
        }
        listed = std::move(*opened);
    }
    DirHandle& dir = listed ? *listed : dir_of(fi);
    reply_listing(req, fs_of(req), dir_ino, dir, size, offset, plus,
                  [req](auto bytes) { return fuse_reply_buf(req, bytes.data(), bytes.size()); });
}

void on_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi) {
    read_dir(req, ino, size, offset, fi, false);
}

void on_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, fuse_file_info* fi) {
    read_dir(req, ino, size, offset, fi, true);
}

void on_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
    if (fi->fh != 0) {
        delete &dir_of(fi);
    }
    fuse_reply_err(req, 0);
}

void on_fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
    reply_void(req, fs_of(req).tree().store().env().sync());
}

void on_statfs(fuse_req_t req, fuse_ino_t) {
    auto st = fs_of(req).statfs();
    if (!st) {
        return reply_error(req, st.error());
    }
    fuse_reply_statfs(req, &*st);
}

void on_access(fuse_req_t req, fuse_ino_t ino, int) {
    // default_permissions: the kernel checks modes itself; here only existence is left.
    auto st = fs_of(req).getattr(ino);
    fuse_reply_err(req, st ? 0 : st.error().code);
}

// A request's name as a template argument, for the log line of a handler that threw.
template <std::size_t N>
struct RequestName {
    constexpr RequestName(const char (&text)[N]) { std::copy_n(text, N, chars); }
    char chars[N];
};

// How a handler that threw is answered: EIO, or not at all (forgets get no answer).
enum class Answer { eio, none };

// `handler` as libfuse calls it: inside answer_or_fail (request_guard.h), so nothing it throws
// reaches libfuse.
template <RequestName name, auto handler, Answer answer = Answer::eio,
          class Handler = decltype(handler)>
struct Guarded;
template <RequestName name, auto handler, Answer answer, class... Args>
struct Guarded<name, handler, answer, void (*)(fuse_req_t, Args...)> {
    static void call(fuse_req_t req, Args... args) noexcept {
        answer_or_fail(
            name.chars, [&] { handler(req, args...); },
            [req] {
                if (answer == Answer::eio) {
                    fuse_reply_err(req, EIO);
                } else {
                    fuse_reply_none(req);
                }
            });
    }
};
template <RequestName name, auto handler, Answer answer = Answer::eio>
constexpr auto guarded = &Guarded<name, handler, answer>::call;

void on_init_guarded(void* userdata, fuse_conn_info* conn) noexcept {
    answer_or_fail(
        "init", [&] { on_init(userdata, conn); }, [] {});
}

fuse_lowlevel_ops make_ops() {
    // Every handler goes in through guarded<>: none may throw into libfuse.
    fuse_lowlevel_ops ops{};
    ops.init = on_init_guarded;
    ops.lookup = guarded<"lookup", on_lookup>;
    ops.forget = guarded<"forget", on_forget, Answer::none>;
    ops.forget_multi = guarded<"forget_multi", on_forget_multi, Answer::none>;
    ops.getattr = guarded<"getattr", on_getattr>;
    ops.setattr = guarded<"setattr", on_setattr>;
    ops.readlink = guarded<"readlink", on_readlink>;
    ops.mknod = guarded<"mknod", on_mknod>;
    ops.mkdir = guarded<"mkdir", on_mkdir>;
    ops.unlink = guarded<"unlink", on_unlink>;
    ops.rmdir = guarded<"rmdir", on_rmdir>;
    ops.symlink = guarded<"symlink", on_symlink>;
    ops.rename = guarded<"rename", on_rename>;
    ops.link = guarded<"link", on_link>;
    ops.open = guarded<"open", on_open>;
    ops.create = guarded<"create", on_create>;
    ops.read = guarded<"read", on_read>;
    ops.write_buf = guarded<"write_buf", on_write_buf>;
    ops.flush = guarded<"flush", on_flush>;
    ops.release = guarded<"release", on_release>;
    ops.fsync = guarded<"fsync", on_fsync>;
    ops.fallocate = guarded<"fallocate", on_fallocate>;
    ops.opendir = guarded<"opendir", on_opendir>;
    ops.readdir = guarded<"readdir", on_readdir>;
    ops.readdirplus = guarded<"readdirplus", on_readdirplus>;
    ops.releasedir = guarded<"releasedir", on_releasedir>;
    ops.fsyncdir = guarded<"fsyncdir", on_fsyncdir>;
    ops.statfs = guarded<"statfs", on_statfs>;
    ops.access = guarded<"access", on_access>;
    ops.setxattr = guarded<"setxattr", on_setxattr>;
    ops.getxattr = guarded<"getxattr", on_getxattr>;
    ops.listxattr = guarded<"listxattr", on_listxattr>;
    ops.removexattr = guarded<"removexattr", on_removexattr>;
    ops.lseek = guarded<"lseek", on_lseek>;
    // Left out, so libfuse answers ENOSYS and the kernel stops asking: locks (the kernel handles
    // them locally), ioctl, poll, bmap.
    return ops;
}

const fuse_lowlevel_ops k_ops = make_ops();

// Runs `work` with stderr (fd 2) sent to a memory file and returns what was written there:
// libfuse and fusermount3, which it runs, say on stderr why a mount failed.
std::string capture_stderr(const std::function<void()>& work) {
    int saved = ::dup(STDERR_FILENO);
    int sink = ::memfd_create("fbfs-mount-stderr", MFD_CLOEXEC);
    if (saved < 0 || sink < 0 || ::dup2(sink, STDERR_FILENO) < 0) {
        for (int fd : {saved, sink}) {
            if (fd >= 0) {
                ::close(fd);
            }
        }
        work();
        return "";
    }
    work();
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::string text;
    char buf[1024];
    for (off_t at = 0;;) {
        ssize_t n = ::pread(sink, buf, sizeof buf, at);
        if (n <= 0 || text.size() > 64 * 1024) {
            break;
        }
        text.append(buf, static_cast<std::size_t>(n));
        at += n;
    }
    ::close(sink);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
    for (auto& c : text) {
        c = c == '\n' ? ' ' : c;
    }
    return text;
}

}  // namespace

Result<std::unique_ptr<FuseServer>> FuseServer::mount(Filesystem& fs, const ServeOptions& options) {
    std::string opts = "default_permissions,subtype=fbfs,fsname=" + options.fsname;
    if (options.allow_other) {
        opts += ",allow_other";
    }
    std::vector<std::string> args{"fbfs", "-o", opts};
    if (options.debug) {
        args.push_back("-d");
    }
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
    fuse_session* session = fuse_session_new(&fargs, &k_ops, sizeof k_ops, &fs);
    fuse_opt_free_args(&fargs);
    if (session == nullptr) {
        return make_error(EINVAL, "could not create the FUSE session (see the message above)");
    }
    std::unique_ptr<FuseServer> server(new FuseServer(session));
    int mounted = -1;
    auto said =
        capture_stderr([&] { mounted = fuse_session_mount(session, options.mountpoint.c_str()); });
    if (mounted != 0) {
        if (said.empty()) {
            said = "libfuse gave no reason";
        }
        return make_error(EIO, fmt::format("could not mount {}: {}{}", options.mountpoint, said,
                                           mount_refusal_hint(said, options.mountpoint)));
    }
    if (auto ok = use_killpriv_channel(session); !ok) {
        return std::unexpected(ok.error());
    }
    return server;
}

FuseServer::~FuseServer() {
    if (m_signals) {
        fuse_remove_signal_handlers(m_session);
    }
    fuse_session_unmount(m_session);
    fuse_session_destroy(m_session);
}

void FuseServer::forget_entry(InodeNumber parent, std::string_view name) {
    int rc = fuse_lowlevel_notify_inval_entry(m_session, parent, name.data(), name.size());
    if (rc != 0 && rc != -ENOENT) {
        spdlog::debug("could not invalidate entry {} of {}: {}", name, parent, std::strerror(-rc));
    }
}

void FuseServer::forget_inode(InodeNumber ino) {
    int rc = fuse_lowlevel_notify_inval_inode(m_session, ino, 0, 0);
    if (rc != 0 && rc != -ENOENT) {
        spdlog::debug("could not invalidate inode {}: {}", ino, std::strerror(-rc));
    }
}

void FuseServer::forget_attributes(InodeNumber ino) {
    // A negative offset leaves the pages alone, and with them every lock a request may hold.
    int rc = fuse_lowlevel_notify_inval_inode(m_session, ino, -1, 0);
    if (rc != 0 && rc != -ENOENT) {
        spdlog::debug("could not invalidate attributes of inode {}: {}", ino, std::strerror(-rc));
    }
}

void FuseServer::store_pages(InodeNumber ino, std::string_view bytes) {
    fuse_bufvec buf = FUSE_BUFVEC_INIT(bytes.size());
    buf.buf[0].mem = const_cast<char*>(bytes.data());
    int rc = fuse_lowlevel_notify_store(m_session, ino, 0, &buf, fuse_buf_copy_flags{});
    if (rc != 0 && rc != -ENOENT) {
        spdlog::debug("could not store pages of inode {}: {}", ino, std::strerror(-rc));
    }
}

Result<void> FuseServer::run() {
    if (fuse_set_signal_handlers(m_session) != 0) {
        return make_error(EIO, "could not install signal handlers");
    }
    m_signals = true;
    fuse_loop_config* config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(config, 0);
    fuse_loop_cfg_set_idle_threads(config, 8);
    int rc = fuse_session_loop_mt(m_session, config);
    fuse_loop_cfg_destroy(config);
    if (rc != 0 && rc != SIGINT && rc != SIGTERM && rc != SIGHUP) {
        return make_error(EIO, fmt::format("the FUSE loop ended with error {}", rc));
    }
    return {};
}

}  // namespace fbfs
