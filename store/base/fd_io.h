// Whole reads and writes on file descriptors, the loops every user of raw fds in store/ needs:
// retried on EINTR and short counts, errors naming what was being read or written.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "store/base/error.h"

namespace fbfs {

// A name for `fd` in error messages: the path it was opened with, where /proc knows it.
std::string fd_name(int fd);

// Writes all of `bytes` to `fd`; the error says "cannot write <what>".
Result<void> write_all(int fd, std::string_view bytes, std::string_view what);

// Reads `fd` to its end in chunks of up to 1 MiB — with pread() from `offset`, or read() from
// the fd's own offset if there is none — and hands each to `visit`. Stops with `visit`'s error,
// or with ECANCELED once `stop` (if given) is set. Returns how many bytes it read.
Result<std::uint64_t> read_chunks(int fd, std::optional<off_t> offset,
                                  const std::atomic<bool>* stop,
                                  const std::function<Result<void>(std::string_view)>& visit);

}  // namespace fbfs
