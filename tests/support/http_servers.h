// Real HTTP cache servers for the remote tests, each on 127.0.0.1 at a free port, stopped (by
// its pid: SIGKILL, then waited for) on every path out, the test's failure included.
//
// NginxServer: Debian's nginx with a config of its own in a temp dir: WebDAV PUT and DELETE,
// create_full_put_path, no body size limit, and, with `Auth::writes`, basic authentication on
// every method but GET and HEAD (user "ci", password "secret"). Its access log gives each
// request's method, path, status and bytes sent, so tests count what moved.
//
// With a SelfSignedCertificate, nginx also serves the same cache over TLS on a second port
// (https_url()); the plain port stays, for the access log's bookkeeping.
//
// BadServer: tests/support/bad_http_server.py, a small cache that misbehaves the way nginx will
// not: wrong bytes, a 500 on every third request, a body cut short, a stall, 507 on writes.
//
// Constructors throw std::runtime_error (naming what failed) if the server cannot be started.
// Neither is thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace fbfs::test {

// One line of a server's request log.
struct LoggedRequest {
    std::string method;
    std::string path;
    int status = 0;
    std::uint64_t body_bytes_sent = 0;
    std::uint64_t connection = 0;  // nginx's serial number of the connection it came on
};

// A child process started for a test, killed and reaped on destruction.
class ServerProcess {
public:
    ServerProcess() = default;
    ServerProcess(const std::vector<std::string>& argv, const std::filesystem::path& output);
    ~ServerProcess();
    ServerProcess(ServerProcess&& other) noexcept;
    ServerProcess& operator=(ServerProcess&& other) noexcept;
    pid_t pid() const { return m_pid; }
    // Kills and reaps the process; does nothing if there is none.
    void stop();
    // Waits for the process to exit: its exit status (128 + signal), or -1 if there is none.
    int wait();

private:
    pid_t m_pid = -1;
};

// A self-signed certificate for 127.0.0.1 (subjectAltName IP:127.0.0.1) and its key, made by
// the openssl CLI in a temp dir of its own: the certificate is also the CA bundle that trusts it.
class SelfSignedCertificate {
public:
    SelfSignedCertificate();  // throws std::runtime_error with openssl's output if it fails
    std::filesystem::path certificate() const { return m_tmp / "cert.pem"; }
    std::filesystem::path key() const { return m_tmp / "key.pem"; }

private:
    TempDir m_tmp;
};

class NginxServer {
public:
    enum class Auth { none, writes };
    // `tls`, if given, must outlive the server.
    explicit NginxServer(Auth auth = Auth::none, const SelfSignedCertificate* tls = nullptr);

    // http://127.0.0.1:PORT/cache
    std::string url() const;
    // url() with user info: http://USER:PASSWORD@127.0.0.1:PORT/cache
    std::string url_with(const std::string& user, const std::string& password) const;
    // https://127.0.0.1:TLS_PORT/cache, the same cache over TLS (a server made with a certificate).
    std::string https_url() const;
    // Where the server keeps its files: root()/cache/cas/<hex>, root()/cache/ac/<hex>.
    std::filesystem::path root() const { return m_dir / "root"; }
    // Every request nginx took so far, oldest first (once its log line is written).
    std::vector<LoggedRequest> requests() const;
    int port() const { return m_port; }

private:
    TempDir m_tmp;
    std::filesystem::path m_dir;
    int m_port = 0;
    int m_tls_port = 0;                          // 0: no TLS
    mutable std::uint64_t m_status_queries = 0;  // requests() asks nginx's stub_status
    ServerProcess m_process;
};

class BadServer {
public:
    // `mode`: "wrong-bytes", "flaky" (a 500 on every third request), "cut-short", "stall",
    // "full" (507 on every PUT), "forbidden" (403 on everything) or "good".
    explicit BadServer(const std::string& mode);

    std::string url() const;
    // Every request logged so far, oldest first (body_bytes_sent is 0).
    std::vector<LoggedRequest> requests() const;

private:
    TempDir m_tmp;
    int m_port = 0;
    ServerProcess m_process;
};

// Waits (at most 10 s) until something accepts connections on 127.0.0.1:port; throws if not.
void wait_for_port(int port, pid_t server);
// A TCP port on 127.0.0.1 that nothing listens on at the moment of asking.
int free_port();

}  // namespace fbfs::test
