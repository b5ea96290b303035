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
// Writes all of `bytes` to `fd` at `offset` with pwrite(); the error says "cannot write <what>".
Result<void> pwrite_all(int fd, std::string_view bytes, off_t offset, std::string_view what);

// A stretch [start, end) of a file that holds data (not a hole).
struct DataExtent {
    off_t start = 0;
    off_t end = 0;
};
// The first stretch of data in `fd` that starts before `end` and ends after `from`, cut to
// [from, end), found with SEEK_DATA and SEEK_HOLE; nullopt if there are only holes. A file whose
// filesystem cannot tell holes is all data. Moves the fd's offset.
Result<std::optional<DataExtent>> next_data(int fd, off_t from, off_t end);

// Reads `fd` to its end in chunks of up to 1 MiB — with pread() from `offset`, or read() from
// the fd's own offset if there is none — and hands each to `visit`. Stops with `visit`'s error,
// or with ECANCELED once `stop` (if given) is set. Returns how many bytes it read.
// With an `offset`, the holes of a regular file are handed over as zeros without reading them
// (found with next_data(), which moves the fd's offset).
Result<std::uint64_t> read_chunks(int fd, std::optional<off_t> offset,
                                  const std::atomic<bool>* stop,
                                  const std::function<Result<void>(std::string_view)>& visit);

}  // namespace fbfs
