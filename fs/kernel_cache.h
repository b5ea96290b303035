// KernelCache: what the kernel caches of a mount's entries and inodes, as fs/ code tells it to
// forget something (fuse_server.cpp sends the notifications). Calls may block until requests in
// flight on the same directory are answered, so they must come from a thread that answers none;
// forget_attributes() alone takes no lock a request may hold.
#pragma once

#include <string_view>

#include "store/meta/schema.h"

namespace fbfs {

class KernelCache {
public:
    virtual ~KernelCache() = default;
    // Drops the kernel's entry `name` of directory `parent`, found or negative, if it has one.
    virtual void forget_entry(InodeNumber parent, std::string_view name) = 0;
    // Drops the kernel's attributes and cached pages of `ino`, if it holds the inode.
    virtual void forget_inode(InodeNumber ino) = 0;
    // Drops only the kernel's attributes of `ino`: safe from a thread that answers requests.
    virtual void forget_attributes(InodeNumber ino) = 0;
    // Puts `bytes` into the kernel's page cache of `ino` from offset 0, as if read.
    virtual void store_pages(InodeNumber ino, std::string_view bytes) = 0;
};

}  // namespace fbfs
