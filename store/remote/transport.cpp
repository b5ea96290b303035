#include "store/remote/transport.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <thread>
#include <vector>

namespace fbfs {

namespace {

using Clock = std::chrono::steady_clock;

std::string_view method_name(Request::Method method) {
    switch (method) {
        case Request::Method::head:
            return "HEAD";
        case Request::Method::get:
            return "GET";
        case Request::Method::put:
            return "PUT";
    }
    return "?";
}

bool transient(CURLcode code) {
    switch (code) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
            return true;
        default:
            return false;
    }
}

// Connections to the server, open at once and kept open between batches: one per request in
// flight, so as many as the larger in-flight limit.
int connection_limit(const RemoteOptions& options) {
    return std::max(options.parallel, options.probes);
}

bool transient_status(long status) {
    return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
           status == 504;
}

}  // namespace

Result<RemoteOptions> RemoteOptions::from_environment() {
    RemoteOptions options;
    if (const char* header = std::getenv("FBFS_REMOTE_HEADER"); header != nullptr) {
        options.header = header;
        if (options.header.find_first_of("\r\n") != std::string::npos ||
            options.header.find(':') == std::string::npos) {
            return make_error(EINVAL,
                              "$FBFS_REMOTE_HEADER is not one header line (give one like "
                              "\"Authorization: Bearer TOKEN\")");
        }
    }
    auto number = [](const char* name, long max) -> Result<std::optional<long>> {
        const char* text = std::getenv(name);
        if (text == nullptr || *text == '\0') {
            return std::nullopt;
        }
        char* end = nullptr;
        long value = std::strtol(text, &end, 10);
        if (*end != '\0' || value <= 0 || value > max) {
            return make_error(EINVAL,
                              fmt::format("${} is {}, not a number from 1 to {}", name, text, max));
        }
        return value;
    };
    if (const char* ca = std::getenv("FBFS_REMOTE_CA"); ca != nullptr && *ca != '\0') {
        if (::access(ca, R_OK) != 0) {
            return make_error(EINVAL, fmt::format("$FBFS_REMOTE_CA is {}, which cannot be read: {} "
                                                  "(give the path of a PEM file of the CA "
                                                  "certificates to trust)",
                                                  ca, std::strerror(errno)));
        }
        options.ca_bundle = ca;
    }
    TRY_ASSIGN(auto timeout, number("FBFS_REMOTE_TIMEOUT", 3600));
    TRY_ASSIGN(auto parallel, number("FBFS_REMOTE_PARALLEL", 256));
    if (timeout) {
        options.stall_timeout = std::chrono::seconds(*timeout);
    }
    if (parallel) {
        options.parallel = static_cast<int>(*parallel);
    }
    return options;
}

// One request in flight: what its callbacks need, and the try it is on.
struct Slot {
    Request* request = nullptr;
    int attempt = 1;
    CURL* easy = nullptr;
    char detail[CURL_ERROR_SIZE] = {};  // curl's words for what went wrong, if anything
    std::uint64_t offset = 0;           // next byte of a PUT body
    std::optional<Error> failure;
};

// A request waiting to start, and the earliest time it may.
struct Waiting {
    Request* request = nullptr;
    int attempt = 1;
    Clock::time_point not_before;
};

// The multi handle (and so the connections it keeps), the easy handles no request is using, and
// the headers every request sends.
struct TransportEngine {
    CURLM* multi = nullptr;
    std::vector<CURL*> idle;
    curl_slist* headers = nullptr;

    explicit TransportEngine(const RemoteOptions& options) {
        init_curl_once();
        multi = curl_multi_init();
        auto connections = static_cast<long>(connection_limit(options));
        curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, connections);
        curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, connections);
        // No "Expect: 100-continue" round trip before a PUT's body.
        headers = curl_slist_append(headers, "Expect:");
        if (!options.header.empty()) {
            headers = curl_slist_append(headers, options.header.c_str());
        }
    }
    ~TransportEngine() {
        for (CURL* easy : idle) {
            curl_easy_cleanup(easy);
        }
        curl_multi_cleanup(multi);
        curl_slist_free_all(headers);
    }
    TransportEngine(const TransportEngine&) = delete;
    TransportEngine& operator=(const TransportEngine&) = delete;

    CURL* take_easy() {
        if (idle.empty()) {
            return curl_easy_init();
        }
        CURL* easy = idle.back();
        idle.pop_back();
        curl_easy_reset(easy);
        return easy;
    }
};

namespace {

std::size_t receive_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* slot = static_cast<Slot*>(user);
    std::size_t bytes = size * count;
    long status = 0;
    curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &status);
    // Only a 2xx answer's body is content; an error page is dropped.
    if (status < 200 || status > 299 || !slot->request->receive) {
        return bytes;
    }
    if (auto got = slot->request->receive({data, bytes}); !got) {
        slot->failure = got.error();
        return 0;
    }
    return bytes;
}

std::size_t send_body(char* buffer, std::size_t size, std::size_t count, void* user) {
    auto* slot = static_cast<Slot*>(user);
    const Request& request = *slot->request;
    std::uint64_t total = request.body_fd >= 0 ? request.body_size : request.body.size();
    std::size_t want = static_cast<std::size_t>(
        std::min<std::uint64_t>(size * count, total - std::min(total, slot->offset)));
    if (want == 0) {
        return 0;
    }
    if (request.body_fd < 0) {
        std::copy_n(request.body.data() + slot->offset, want, buffer);
        slot->offset += want;
        return want;
    }
    ssize_t got = ::pread(request.body_fd, buffer, want, static_cast<off_t>(slot->offset));
    if (got <= 0) {
        int code = got < 0 ? errno : EIO;
        slot->failure = Error{
            code, fmt::format("cannot read the body of {} at offset {}: {}", request.path,
                              slot->offset, got < 0 ? std::strerror(code) : "the file shrank")};
        return CURL_READFUNC_ABORT;
    }
    slot->offset += static_cast<std::uint64_t>(got);
    return static_cast<std::size_t>(got);
}

int seek_body(void* user, curl_off_t offset, int origin) {
    auto* slot = static_cast<Slot*>(user);
    if (origin != SEEK_SET || offset < 0) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    slot->offset = static_cast<std::uint64_t>(offset);
    return CURL_SEEKFUNC_OK;
}

}  // namespace

Transport::Transport(RemoteUrl url, RemoteOptions options)
    : m_url(std::move(url)),
      m_options(std::move(options)),
      m_engine(std::make_unique<TransportEngine>(m_options)) {}
Transport::~Transport() = default;
Transport::Transport(Transport&&) noexcept = default;
Transport& Transport::operator=(Transport&&) noexcept = default;

Error Transport::request_error(const Request& request, int code, std::string_view what) const {
    return Error{code, fmt::format("remote {}: {} {}: {}", m_url.shown, method_name(request.method),
                                   request.path, what)};
}

Error Transport::status_error(const Request& request, long status) const {
    switch (status) {
        case 401:
            return request_error(request, EACCES,
                                 "401 Unauthorized (give credentials: $FBFS_REMOTE_HEADER, e.g. "
                                 "\"Authorization: Bearer TOKEN\", or user:password@ in the URL)");
        case 403:
            return request_error(request, EACCES,
                                 "403 Forbidden (the server refused these credentials: check "
                                 "$FBFS_REMOTE_HEADER or the URL's user:password)");
        case 404:
            return request_error(request, ENOENT, "404 Not Found");
        case 405:
            return request_error(request, EPERM,
                                 "405 Method Not Allowed (the server takes no writes here: nginx "
                                 "needs `dav_methods PUT`)");
        case 413:
            return request_error(request, EFBIG,
                                 "413 Payload Too Large (raise the server's body size limit: "
                                 "nginx's client_max_body_size 0)");
        case 507:
            return request_error(request, ENOSPC,
                                 "507 Insufficient Storage (the cache server's disk is full: free "
                                 "space there or raise its size limit)");
        default:
            if (status >= 500) {
                return request_error(request, EIO,
                                     fmt::format("HTTP {} from the server after {} tries", status,
                                                 m_options.attempts));
            }
            return request_error(request, EIO, fmt::format("unexpected HTTP {}", status));
    }
}

namespace {

// The Error for a request whose last try got no answer; `detail` is curl's error buffer.
Error transport_error(const Transport& transport, const Request& request, CURLcode code,
                      long os_errno, int tries, std::string_view detail) {
    std::string after = tries > 1 ? fmt::format(" ({} tries)", tries) : "";
    switch (code) {
        case CURLE_COULDNT_CONNECT:
            if (os_errno == ECONNREFUSED) {
                return transport.request_error(
                    request, ECONNREFUSED,
                    fmt::format("connection refused{} (is the cache server running at that "
                                "address?)",
                                after));
            }
            return transport.request_error(
                request, ECONNREFUSED,
                fmt::format("cannot connect: {}{}",
                            os_errno != 0 ? std::strerror(static_cast<int>(os_errno)) : "no route",
                            after));
        case CURLE_COULDNT_RESOLVE_HOST:
            return transport.request_error(request, EHOSTUNREACH,
                                           "cannot resolve the server's host name");
        case CURLE_OPERATION_TIMEDOUT:
            return transport.request_error(
                request, ETIMEDOUT,
                fmt::format("timed out: nothing moved for {} s{}",
                            transport.options().stall_timeout.count(), after));
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
            return transport.request_error(
                request, EPROTO, fmt::format("the server's answer was cut short{}", after));
        case CURLE_PEER_FAILED_VERIFICATION:
            return transport.request_error(
                request, EACCES,
                fmt::format("TLS certificate verification failed: {} (trust the server's CA "
                            "with $FBFS_REMOTE_CA=/path/to/ca.pem, or give the server a "
                            "certificate the system's CA store verifies)",
                            detail.empty() ? curl_easy_strerror(code) : detail));
        case CURLE_SSL_CACERT_BADFILE:
            return transport.request_error(
                request, EACCES,
                fmt::format("TLS: cannot use the CA certificates{}: {} ($FBFS_REMOTE_CA must name "
                            "a PEM file of CA certificates)",
                            transport.options().ca_bundle.empty()
                                ? std::string()
                                : " in " + transport.options().ca_bundle,
                            detail.empty() ? curl_easy_strerror(code) : detail));
        case CURLE_SSL_CONNECT_ERROR:
            return transport.request_error(
                request, EPROTO,
                fmt::format("TLS handshake failed: {} (is it an https server?)",
                            detail.empty() ? curl_easy_strerror(code) : detail));
        default:
            return transport.request_error(request, EIO,
                                           fmt::format("{}{}", curl_easy_strerror(code), after));
    }
}

}  // namespace

namespace {

// One run of Transport::run(): the requests waiting, those in flight, and the first failure.
class Batch {
public:
    Batch(const Transport& transport, TransportEngine& engine, std::span<Request> requests,
          std::deque<Request>* later)
        : m_transport(transport), m_engine(engine), m_later(later) {
        for (Request& request : requests) {
            queue(request);
        }
        take_later();
    }
    ~Batch() {
        for (auto& slot : m_active) {
            curl_multi_remove_handle(m_engine.multi, slot->easy);
            give_back(slot->easy);
        }
    }
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

    Result<void> run() {
        while (!m_failure && (!m_fresh[0].empty() || !m_fresh[1].empty() || !m_retries.empty() ||
                              !m_active.empty())) {
            auto now = Clock::now();
            start_ready(now);
            if (m_failure) {
                break;
            }
            long wait = wait_ms(now);
            if (m_active.empty()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(wait));
                continue;
            }
            int running = 0;
            curl_multi_perform(m_engine.multi, &running);
            bool finished = collect() > 0;
            take_later();
            // A finished request leaves room: fill it now, not after the next socket event.
            if (running > 0 && !finished) {
                curl_multi_poll(m_engine.multi, nullptr, 0, static_cast<int>(wait), nullptr);
            }
        }
        if (m_failure) {
            return std::unexpected(std::move(*m_failure));
        }
        return {};
    }

private:
    // An easy handle done with its slot, to the idle ones: curl must write no more into the slot.
    void give_back(CURL* easy) {
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, nullptr);
        m_engine.idle.push_back(easy);
    }

    // HEADs are probes: no body, a limit of their own (RemoteOptions::probes).
    static bool probe(const Request& request) { return request.method == Request::Method::head; }

    void queue(Request& request) { m_fresh[probe(request) ? 1 : 0].push_back({&request, 1, {}}); }

    // Queues the requests callbacks appended to `later` since the last look.
    void take_later() {
        for (; m_later != nullptr && m_later_taken < m_later->size(); ++m_later_taken) {
            queue((*m_later)[m_later_taken]);
        }
    }

    // Whether one more request of this kind may start: under its own limit and under the
    // connections.
    bool room_for(bool is_probe) const {
        const RemoteOptions& options = m_transport.options();
        auto limit = static_cast<std::size_t>(is_probe ? options.probes : options.parallel);
        return m_in_flight[is_probe ? 1 : 0] < limit &&
               m_active.size() < static_cast<std::size_t>(connection_limit(options));
    }

    // Starts waiting requests while each kind has room, retries whose backoff is over first.
    void start_ready(Clock::time_point now) {
        for (auto it = m_retries.begin(); !m_failure && it != m_retries.end();) {
            if (it->not_before <= now && room_for(probe(*it->request))) {
                Waiting waiting = *it;
                it = m_retries.erase(it);
                start(waiting);
            } else {
                ++it;
            }
        }
        for (bool is_probe : {true, false}) {
            auto& fresh = m_fresh[is_probe ? 1 : 0];
            while (!m_failure && !fresh.empty() && room_for(is_probe)) {
                Waiting waiting = fresh.front();
                fresh.pop_front();
                start(waiting);
            }
        }
    }

    // How long to wait for sockets: 100 ms at most, less if a retry is due sooner.
    long wait_ms(Clock::time_point now) const {
        long wait = 100;
        for (const Waiting& waiting : m_retries) {
            auto until =
                std::chrono::duration_cast<std::chrono::milliseconds>(waiting.not_before - now);
            wait = std::clamp<long>(static_cast<long>(until.count()), 1, wait);
        }
        return wait;
    }

    void start(const Waiting& waiting) {
        Request& request = *waiting.request;
        if (request.restart) {
            if (auto restarted = request.restart(); !restarted) {
                m_failure = restarted.error();
                return;
            }
        }
        auto slot = std::make_unique<Slot>();
        slot->request = &request;
        slot->attempt = waiting.attempt;
        slot->easy = m_engine.take_easy();
        configure(*slot);
        curl_multi_add_handle(m_engine.multi, slot->easy);
        ++m_in_flight[probe(request) ? 1 : 0];
        m_active.push_back(std::move(slot));
    }

    void configure(Slot& slot) const {
        const RemoteOptions& options = m_transport.options();
        const RemoteUrl& url = m_transport.url();
        const Request& request = *slot.request;
        CURL* easy = slot.easy;
        std::string address = fmt::format("{}/{}", url.base, request.path);
        curl_easy_setopt(easy, CURLOPT_URL, address.c_str());
        curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                         static_cast<long>(options.connect_timeout.count()));
        curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME,
                         static_cast<long>(options.stall_timeout.count()));
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
        if (!options.ca_bundle.empty()) {
            curl_easy_setopt(easy, CURLOPT_CAINFO, options.ca_bundle.c_str());
        }
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, slot.detail);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, m_engine.headers);
        if (!url.user.empty() || !url.password.empty()) {
            curl_easy_setopt(easy, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
            curl_easy_setopt(easy, CURLOPT_USERNAME, url.user.c_str());
            curl_easy_setopt(easy, CURLOPT_PASSWORD, url.password.c_str());
        }
        curl_easy_setopt(easy, CURLOPT_PRIVATE, &slot);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, receive_body);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, &slot);
        if (request.method == Request::Method::head) {
            curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
        } else if (request.method == Request::Method::put) {
            std::uint64_t size = request.body_fd >= 0 ? request.body_size : request.body.size();
            curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(easy, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
            curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
            curl_easy_setopt(easy, CURLOPT_READFUNCTION, send_body);
            curl_easy_setopt(easy, CURLOPT_READDATA, &slot);
            curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, seek_body);
            curl_easy_setopt(easy, CURLOPT_SEEKDATA, &slot);
        }
    }

    // Hands every finished transfer to finish() and its easy handle back to the engine; returns
    // how many there were.
    int collect() {
        int finished = 0;
        int left = 0;
        while (CURLMsg* message = curl_multi_info_read(m_engine.multi, &left)) {
            if (message->msg != CURLMSG_DONE) {
                continue;
            }
            ++finished;
            CURL* easy = message->easy_handle;
            CURLcode code = message->data.result;
            auto it = std::find_if(m_active.begin(), m_active.end(),
                                   [&](const auto& slot) { return slot->easy == easy; });
            curl_multi_remove_handle(m_engine.multi, easy);
            if (it == m_active.end()) {
                give_back(easy);
                continue;
            }
            std::unique_ptr<Slot> slot = std::move(*it);
            m_active.erase(it);
            --m_in_flight[probe(*slot->request) ? 1 : 0];
            if (!m_failure) {
                finish(*slot, code);
            }
            give_back(easy);
        }
        return finished;
    }

    // A finished try: again later if the fault may pass and tries are left, else judged.
    void finish(Slot& slot, CURLcode code) {
        Request& request = *slot.request;
        if (slot.failure) {
            m_failure = slot.failure;
            return;
        }
        long status = 0;
        long os_errno = 0;
        curl_easy_getinfo(slot.easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(slot.easy, CURLINFO_OS_ERRNO, &os_errno);
        const RemoteOptions& options = m_transport.options();
        bool again = code != CURLE_OK ? transient(code) : transient_status(status);
        if (again && slot.attempt < options.attempts) {
            auto delay = options.backoff * (1 << (slot.attempt - 1));
            spdlog::debug(
                "remote {}: {} {}: {}; trying again in {} ms", m_transport.url().shown,
                method_name(request.method), request.path,
                code != CURLE_OK ? curl_easy_strerror(code) : fmt::format("HTTP {}", status),
                delay.count());
            m_retries.push_back({&request, slot.attempt + 1, Clock::now() + delay});
            return;
        }
        if (code != CURLE_OK) {
            m_failure =
                transport_error(m_transport, request, code, os_errno, slot.attempt, slot.detail);
            return;
        }
        if (request.done) {
            if (auto judged = request.done(status); !judged) {
                m_failure = judged.error();
            }
        }
    }

    const Transport& m_transport;
    TransportEngine& m_engine;
    std::deque<Request>* m_later = nullptr;
    std::size_t m_later_taken = 0;   // requests of *m_later queued so far
    std::deque<Waiting> m_fresh[2];  // never tried: [0] GETs and PUTs, [1] HEADs
    std::vector<Waiting> m_retries;
    std::vector<std::unique_ptr<Slot>> m_active;
    std::size_t m_in_flight[2] = {0, 0};  // of m_active: [0] GETs and PUTs, [1] HEADs
    std::optional<Error> m_failure;
};

}  // namespace

Result<void> Transport::run(std::span<Request> requests, std::deque<Request>* later) {
    return Batch(*this, *m_engine, requests, later).run();
}

}  // namespace fbfs
