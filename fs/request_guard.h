// No exception crosses into libfuse. libfuse is C: an exception that unwinds into it terminates
// the daemon, and with it the mount and every file not yet closed. Exceptions are for what
// cannot continue (a failed allocation, OpenSSL failing to set up a hash), and a request that
// meets one fails alone: EIO for it, one line in the log, and the mount serves on.
//
// fuse_server.cpp runs every handler inside answer_or_fail(). A handler replies last; work after
// its reply (giving back a count the failed reply would have handed to the kernel) goes through
// after_reply(), which never throws, so no request is answered twice.
#pragma once

#include <cstddef>
#include <string_view>
#include <utility>

namespace fbfs {

// Inside a catch block: logs one error line naming `request`, what was thrown and `outcome`.
// Never throws (if even logging fails, nothing is said).
void log_current_exception(std::string_view request, std::string_view outcome) noexcept;

// Runs `work`, a request's handler. If it throws, logs it and runs `fail`, which answers the
// request instead (EIO; nothing for a request that gets no answer).
template <class Work, class Fail>
void answer_or_fail(std::string_view request, Work&& work, Fail&& fail) noexcept {
    try {
        std::forward<Work>(work)();
        return;
    } catch (...) {
        log_current_exception(request, "answered EIO");
    }
    try {
        std::forward<Fail>(fail)();
    } catch (...) {
        log_current_exception(request, "and answering it failed too");
    }
}

// Runs `work` after `request` was answered: what it throws is logged and goes no further.
template <class Work>
void after_reply(std::string_view request, Work&& work) noexcept {
    try {
        std::forward<Work>(work)();
    } catch (...) {
        log_current_exception(request, "after its answer; a lookup count or handle may leak");
    }
}

// Runs `work(i)` for each i in [0, count), each on its own: one that throws is logged and the
// others still run (a batch of forgets, whose entries do not depend on each other).
template <class Work>
void each_or_log(std::string_view request, std::size_t count, Work&& work) noexcept {
    for (std::size_t i = 0; i < count; ++i) {
        try {
            work(i);
        } catch (...) {
            log_current_exception(request, "for one of its entries; the others go on");
        }
    }
}

}  // namespace fbfs
