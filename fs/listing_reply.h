// The reply to one READDIR or READDIRPLUS request: a page of a directory listing, encoded with
// libfuse's encoders and handed to the kernel by a `send` function (fuse_reply_buf in
// fuse_server.cpp, a stand-in in tests).
//
// A READDIRPLUS entry is a lookup: Filesystem::lookup counts one kernel reference for it. The
// kernel takes those references only if the reply reaches it, so when `send` fails (the request
// was interrupted, the connection is gone) every lookup counted for the page is given back, as a
// failed entry reply does. Otherwise the inode would stay held after its last name is gone.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <span>

#include "fs/filesystem.h"

namespace fbfs {

// What an entry reply tells the kernel about `st`, with the timeouts `fs` allows.
fuse_entry_param entry_param(const Filesystem& fs, const struct stat& st);

// Sends a reply's bytes; 0 when the kernel got them, else -errno (as fuse_reply_buf).
using SendListing = std::function<int(std::span<const char> bytes)>;

// Fills at most `size` bytes with the entries of `dir` (the listing of directory `dir_ino`) from
// `offset` on, with attributes if `plus`, and sends them. `req` is passed to libfuse's entry
// encoders, which take it only for form. Returns what `send` returned.
int reply_listing(fuse_req_t req, Filesystem& fs, InodeNumber dir_ino, const DirHandle& dir,
                  std::size_t size, off_t offset, bool plus, const SendListing& send);

}  // namespace fbfs
