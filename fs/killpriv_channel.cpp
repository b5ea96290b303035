#include "fs/killpriv_channel.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace fbfs {

namespace {

// What the kernel's INIT request said, recorded as it is read (libfuse reads INIT with read(2),
// not splice: splicing is negotiated by INIT itself) and used when the reply is written.
std::atomic<bool> g_offered{false};
std::atomic<std::uint64_t> g_init_unique{0};
std::atomic<bool> g_replied{false};
std::atomic<bool> g_active{false};

ssize_t channel_read(int fd, void* buf, size_t len, void*) {
    ssize_t n = ::read(fd, buf, len);
    constexpr auto k_need = sizeof(fuse_in_header) + offsetof(fuse_init_in, flags) + 4;
    if (n >= static_cast<ssize_t>(k_need) && !g_replied.load()) {
        fuse_in_header in{};
        std::memcpy(&in, buf, sizeof in);
        if (in.opcode == FUSE_INIT) {
            fuse_init_in init{};
            std::memcpy(&init, static_cast<const char*>(buf) + sizeof in,
                        offsetof(fuse_init_in, flags) + 4);
            g_offered = init.major == FUSE_KERNEL_VERSION && (init.flags & FUSE_HANDLE_KILLPRIV_V2);
            g_init_unique = in.unique;
        }
    }
    return n;
}

// The INIT reply: the first reply to INIT's request id. Every other message passes as it is.
bool is_init_reply(const struct iovec* iov, int count) {
    if (g_replied.load() || count != 2 || iov[0].iov_len != sizeof(fuse_out_header) ||
        iov[1].iov_len < offsetof(fuse_init_out, flags) + 4 ||
        iov[1].iov_len > sizeof(fuse_init_out)) {
        return false;
    }
    fuse_out_header out{};
    std::memcpy(&out, iov[0].iov_base, sizeof out);
    return out.unique == g_init_unique.load() && out.error == 0 && !g_replied.exchange(true);
}

ssize_t channel_writev(int fd, struct iovec* iov, int count, void*) {
    if (!is_init_reply(iov, count) || !g_offered.load()) {
        return ::writev(fd, iov, count);
    }
    fuse_init_out init{};
    std::memcpy(&init, iov[1].iov_base, iov[1].iov_len);
    init.flags = (init.flags & ~std::uint32_t{FUSE_HANDLE_KILLPRIV}) | FUSE_HANDLE_KILLPRIV_V2;
    iovec patched[2] = {iov[0], {&init, iov[1].iov_len}};
    ssize_t n = ::writev(fd, patched, 2);
    g_active = n >= 0;
    return n;
}

ssize_t channel_splice_receive(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                               unsigned int flags, void*) {
    return ::splice(fdin, offin, fdout, offout, len, flags);
}

ssize_t channel_splice_send(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                            unsigned int flags, void*) {
    return ::splice(fdin, offin, fdout, offout, len, flags);
}

}  // namespace

Result<void> use_killpriv_channel(fuse_session* session) {
    static const fuse_custom_io k_io{channel_writev, channel_read, channel_splice_receive,
                                     channel_splice_send};
    int rc = fuse_session_custom_io(session, &k_io, fuse_session_fd(session));
    if (rc != 0) {
        return make_error(EIO, fmt::format("could not set up the FUSE channel: {}",
                                           std::strerror(rc < 0 ? -rc : rc)));
    }
    return {};
}

bool killpriv_v2_active() {
    return g_active.load();
}

}  // namespace fbfs
