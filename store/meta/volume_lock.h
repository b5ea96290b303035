// VolumeLock: makes sure that at most one daemon serves a volume of a store at a time.
//
// The lock is an open file description lock (fcntl F_OFD_SETLK) on <store>/locks/<volume>.lock,
// which also holds the holder's pid. The kernel drops it when the holder exits, however it exits,
// so a killed daemon never leaves a stale lock; holder() only tests it, so asking never gets in
// the way of a daemon taking it. Move-only; not thread-safe.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "store/base/error.h"
#include "store/base/unique_fd.h"

namespace fbfs {

class VolumeLock {
public:
    // Takes the lock, or fails with EBUSY and a message naming the holder's pid (EINVAL for a
    // name check_volume_name refuses).
    static Result<VolumeLock> acquire(const std::filesystem::path& store_root,
                                      const std::string& volume);
    // The pid holding the lock on `volume`, if any holds it: a live process, never 0. A holder
    // that has just taken the lock is given up to a second to write its pid; if none comes (a
    // holder in another pid namespace), the result is empty. So an empty result does not promise
    // the volume is free: whoever needs that takes the lock (acquire()).
    static std::optional<pid_t> holder(const std::filesystem::path& store_root,
                                       const std::string& volume);

    // The error for `volume` held by `pid`: it says whether a mount serves it — then
    // `when_mounted` says what to do — or an fbfs pack or unpack is using it.
    static Error busy(const std::filesystem::path& store_root, const std::string& volume, pid_t pid,
                      std::string_view when_mounted);

    // Records the current process as the holder (after a daemon forked, the pid changed).
    void record_pid() const;

private:
    explicit VolumeLock(UniqueFd fd) : m_fd(std::move(fd)) {}
    UniqueFd m_fd;
};

}  // namespace fbfs
