// The /dev/fuse channel of a mounted session, read and written as libfuse would, with one change:
// the reply to the kernel's INIT asks for FUSE_HANDLE_KILLPRIV_V2 (in place of
// FUSE_HANDLE_KILLPRIV), which libfuse 3.14 cannot ask for.
//
// Why: a mount that answers getxattr is asked getxattr("security.capability") before every
// write(2), to know whether the write must drop the file's capabilities, unless the superblock
// says SB_NOSEC; the kernel sets SB_NOSEC only for a server that takes FUSE_HANDLE_KILLPRIV_V2.
// With it, the kernel asks once per inode and then remembers (S_NOSEC) until the inode's
// attributes are refreshed or a security.* attribute is set. The server's part of the bargain:
// when a caller without CAP_FSETID truncates a setuid or setgid file (truncate(2), or open with
// O_TRUNC), the server drops those bits; the kernel still drops them itself on write and chown,
// and drops security.capability itself (removexattr) on write, truncate and chown.
//
// Only offered to a kernel that offers FUSE_HANDLE_KILLPRIV_V2 in its INIT (Linux 5.11 and
// later); with an older kernel nothing changes. One channel per process: the state lives in
// this file. Thread-safe.
#pragma once

#include "store/base/error.h"

struct fuse_session;

namespace fbfs {

// The bit of setattr's `to_set` that asks the server to drop setuid and setgid (the kernel's
// FATTR_KILL_SUIDGID, which libfuse passes through as it is).
inline constexpr int k_setattr_drop_setid = 1 << 11;

// Switches `session`, mounted but not yet serving, to this channel. EIO if libfuse refuses.
Result<void> use_killpriv_channel(fuse_session* session);

// Whether the kernel agreed: the INIT reply carried FUSE_HANDLE_KILLPRIV_V2. The server then
// drops setuid and setgid on truncation itself (Filesystem::drop_setid_on_truncate).
bool killpriv_v2_active();

}  // namespace fbfs
