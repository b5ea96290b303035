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
