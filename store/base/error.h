// Error and Result: how fbfs reports failures that happen in normal use.
//
// An Error carries an errno-like code (so the FUSE layer can reply with it) and a message for a
// person that names the path or object involved and, where there is one, the fix.
#pragma once

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace fbfs {

struct Error {
    int code = EIO;
    std::string message;
};

template <class T>
using Result = std::expected<T, Error>;

// An Error for a failed system call: "<what>: <strerror(code)>".
inline std::unexpected<Error> sys_error(int code, std::string_view what) {
    return std::unexpected(Error{code, fmt::format("{}: {}", what, std::strerror(code))});
}

// sys_error() with the current errno.
inline std::unexpected<Error> errno_error(std::string_view what) {
    return sys_error(errno, what);
}

inline std::unexpected<Error> make_error(int code, std::string message) {
    return std::unexpected(Error{code, std::move(message)});
}

}  // namespace fbfs

// TRY and TRY_ASSIGN: the one way to pass a failure up. Both work in any function that returns
// a Result (a lambda needs its `-> Result<...>` written out) and return the Error as it came, so
// the message still names what failed.
//
//   TRY(txn.put(dbi, key, value));                // a Result<void>, or a value not needed
//   TRY_ASSIGN(auto record, VolumeRecord::decode(bytes));  // declares `record`
//   TRY_ASSIGN(id, unused_volume_id(txn, tables));         // assigns an existing `id`
//
// TRY is one statement. TRY_ASSIGN is several, in the enclosing scope, so that it can declare:
// never the unbraced body of an `if` or a loop. A Result that is a named variable is copied, not
// moved from. Plain C++ (no statement expressions), so -Wpedantic has nothing to say;
// __COUNTER__ gives each use a name of its own, so nested uses do not shadow.
#define TRY(...) FBFS_TRY_(FBFS_TRY_NAME_(__COUNTER__), __VA_ARGS__)
#define TRY_ASSIGN(target, ...) FBFS_TRY_ASSIGN_(FBFS_TRY_NAME_(__COUNTER__), target, __VA_ARGS__)

#define FBFS_TRY_NAME_(counter) FBFS_TRY_CONCAT_(fbfs_try_result_, counter)
#define FBFS_TRY_CONCAT_(a, b) a##b
#define FBFS_TRY_(result, ...)                                                      \
    do {                                                                            \
        if (auto&& result = (__VA_ARGS__); !result) {                               \
            return std::unexpected(std::forward<decltype(result)>(result).error()); \
        }                                                                           \
    } while (false)
#define FBFS_TRY_ASSIGN_(result, target, ...)              \
    auto result = (__VA_ARGS__);                           \
    if (!result) {                                         \
        return std::unexpected(std::move(result).error()); \
    }                                                      \
    target = std::move(*result)
