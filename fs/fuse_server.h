// FuseServer: serves a Filesystem at a mountpoint with libfuse3's low-level API.
//
// fuse_server.cpp is the one translation point between FUSE requests and Filesystem calls: each
// handler calls one Filesystem method and turns its Result into exactly one reply. Requests are
// served by libfuse's multi-threaded loop. Not copyable; run() blocks until unmounted.
#pragma once

#include <memory>
#include <string>

#include "fs/filesystem.h"
#include "fs/kernel_cache.h"
#include "store/base/error.h"

struct fuse_session;

namespace fbfs {

struct ServeOptions {
    std::string mountpoint;
    std::string fsname;        // shown in /proc/mounts as the source
    bool allow_other = false;  // let other users in (needs user_allow_other for non-root)
    bool debug = false;        // libfuse's request trace on stderr
};

class FuseServer : public KernelCache {
public:
    // Creates the session and mounts it (through fusermount3 when not root).
    static Result<std::unique_ptr<FuseServer>> mount(Filesystem& fs, const ServeOptions& options);
    ~FuseServer() override;  // unmounts if still mounted
    FuseServer(const FuseServer&) = delete;
    FuseServer& operator=(const FuseServer&) = delete;

    // Serves requests until the filesystem is unmounted or SIGINT/SIGTERM/SIGHUP arrives.
    Result<void> run();

    // KernelCache: notifications to the kernel (never from a thread that answers requests).
    void forget_entry(InodeNumber parent, std::string_view name) override;
    void forget_inode(InodeNumber ino) override;
    void forget_attributes(InodeNumber ino) override;
    void store_pages(InodeNumber ino, std::string_view bytes) override;

private:
    explicit FuseServer(fuse_session* session) : m_session(session) {}
    fuse_session* m_session;
    bool m_signals = false;
};

}  // namespace fbfs
