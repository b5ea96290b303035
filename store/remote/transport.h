// Transport: HTTP requests to one remote cache through a libcurl multi handle, many at once over
// connections kept alive between requests and between batches, with timeouts and bounded retries.
//
// A request that fails in a way that may pass (connection refused or reset, a timeout, a body cut
// short, HTTP 408, 429, 500, 502, 503, 504) is tried again after a backoff that doubles each time,
// at most RemoteOptions::attempts times in all. Any other answer is the request's own to judge:
// its `done` callback gets the HTTP status. Credentials go into requests only; no message, log
// line or error names them (the URL is always RemoteUrl::shown).
//
// HEADs carry no body, so more of them go at once (RemoteOptions::probes) than GETs and PUTs
// (RemoteOptions::parallel): asking a cache which of 40 objects it lacks costs one round trip, not
// five. The connections kept open are as many as the larger of the two, and no more transfers are
// in flight than connections.
//
// A Transport is move-only and not thread-safe: one batch at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "store/base/error.h"
#include "store/remote/remote_url.h"

namespace fbfs {

struct RemoteOptions {
    int parallel = 8;  // GETs and PUTs in flight at once
    int probes = 32;   // HEADs in flight at once; connections kept open: max(parallel, probes)
    int attempts = 4;  // tries of each request, the first included
    std::chrono::milliseconds backoff{200};  // before the second try; doubled before each next
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::seconds stall_timeout{30};  // no byte moved for this long: a timeout
    std::string header;                      // one header line sent with every request, or empty
    // The CA certificates (a PEM file) an https server's certificate must verify against, instead
    // of the system's; empty: the system's. TLS is always verified: there is no way to turn
    // verification off.
    std::string ca_bundle;

    // The defaults, with `header` from $FBFS_REMOTE_HEADER (e.g. "Authorization: Bearer ..."),
    // `stall_timeout` from $FBFS_REMOTE_TIMEOUT (seconds), `parallel` from $FBFS_REMOTE_PARALLEL
    // and `ca_bundle` from $FBFS_REMOTE_CA, where set. EINVAL naming the variable if a number is
    // not a number > 0 or the CA file cannot be read.
    static Result<RemoteOptions> from_environment();
};

struct Request {
    enum class Method { head, get, put };
    Method method = Method::get;
    std::string path;  // below the base URL: "cas/<hex>" or "ac/<hex>"
    // PUT: the body is `body_fd` from offset 0 for `body_size` bytes, or `body` if body_fd is -1.
    std::string body;
    int body_fd = -1;
    std::uint64_t body_size = 0;
    // GET: `restart` before every try (forget what an earlier try received), `receive` with each
    // piece of a 2xx answer's body. An Error from either ends the batch with it.
    std::function<Result<void>()> restart;
    std::function<Result<void>(std::string_view)> receive;
    // After the last try, with the HTTP status it got. An Error ends the batch with it.
    std::function<Result<void>(long status)> done;
};

struct TransportEngine;

class Transport {
public:
    Transport(RemoteUrl url, RemoteOptions options);
    ~Transport();
    Transport(Transport&&) noexcept;
    Transport& operator=(Transport&&) noexcept;

    // Runs every request, up to options.probes HEADs and options.parallel others at once. A
    // callback may append requests to `later` (a deque: what it holds stays where it is); each
    // starts as soon as there is room, in this batch, which ends when they are done too. On the
    // first failure (a request whose last try failed to get an answer, or an Error from a
    // callback) the others are abandoned and that Error returned: "remote <url>: <METHOD> <path>:
    // <what went wrong>", with errno-like codes ECONNREFUSED, ETIMEDOUT, EPROTO (a body cut
    // short), EACCES (TLS verification), EIO.
    Result<void> run(std::span<Request> requests, std::deque<Request>* later = nullptr);

    // The Error for an HTTP status that a request did not expect: 401 and 403 (EACCES, with the
    // fix: credentials), 404 (ENOENT), 507 and 413 (ENOSPC, EFBIG), others EIO.
    Error status_error(const Request& request, long status) const;
    // "remote <url>: <METHOD> <path>: <what>" with `code`.
    Error request_error(const Request& request, int code, std::string_view what) const;

    const RemoteUrl& url() const { return m_url; }
    const RemoteOptions& options() const { return m_options; }

private:
    RemoteUrl m_url;
    RemoteOptions m_options;
    std::unique_ptr<TransportEngine> m_engine;  // the multi handle and its idle easy handles
};

}  // namespace fbfs
