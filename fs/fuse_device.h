// What mounting needs from the machine: a usable /dev/fuse and, for a user other than root, a
// setuid-root fusermount3 (libfuse runs it to mount; fbfs runs it to unmount). Each check names
// what is missing and how a user gets it. Stateless and thread-safe.
#pragma once

#include <filesystem>
#include <string>

#include "store/base/error.h"

namespace fbfs {

// Where libfuse looks for fusermount3 before it searches PATH.
inline constexpr const char* k_fusermount_dir = "/usr/bin";

// Checks that /dev/fuse exists, is a character device, and (for a user other than root) is
// readable and writable by the caller. Returns an Error naming the cause and the fix.
Result<void> check_fuse_device();

// The fusermount3 an ordinary user can mount and unmount with: the first setuid-root one among
// /usr/bin/fusermount3, /bin/fusermount3 and then PATH's, in that order, so a copy that is not
// setuid earlier on PATH is passed over. Fails naming the copy that is not setuid, or saying
// that none is installed.
Result<std::filesystem::path> find_fusermount();

// Makes sure libfuse, which runs /usr/bin/fusermount3 if it exists and else the first on PATH,
// runs `fusermount`: puts its folder first on this process's PATH. Fails if /usr/bin holds
// another fusermount3, which libfuse would run instead. Call before forking threads.
Result<void> prefer_fusermount(const std::filesystem::path& fusermount);

// A hint for a mount that fusermount3 refused with `message` at `mountpoint`, or "" when there
// is none to give (AppArmor on Ubuntu 25.04 and later confines fusermount3 to a few trees).
std::string mount_refusal_hint(const std::string& message, const std::filesystem::path& mountpoint);

}  // namespace fbfs
