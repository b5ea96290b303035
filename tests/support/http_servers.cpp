#include "tests/support/http_servers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace fbfs::test {

namespace fs = std::filesystem;

namespace {

std::vector<LoggedRequest> read_log(const fs::path& path) {
    std::vector<LoggedRequest> requests;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        LoggedRequest request;
        std::string status;
        fields >> request.method >> request.path >> status >> request.body_bytes_sent >>
            request.connection;
        request.status = std::atoi(status.c_str());
        requests.push_back(request);
    }
    return requests;
}

bool accepts(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

ServerProcess::ServerProcess(const std::vector<std::string>& argv, const fs::path& output) {
    pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error("cannot fork a test server");
    }
    if (pid == 0) {
        int out = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (out >= 0) {
            ::dup2(out, 1);
            ::dup2(out, 2);
        }
        std::vector<char*> args;
        for (const auto& arg : argv) {
            args.push_back(const_cast<char*>(arg.c_str()));
        }
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    m_pid = pid;
}

ServerProcess::~ServerProcess() {
    stop();
}

ServerProcess::ServerProcess(ServerProcess&& other) noexcept
    : m_pid(std::exchange(other.m_pid, -1)) {}

ServerProcess& ServerProcess::operator=(ServerProcess&& other) noexcept {
    if (this != &other) {
        stop();
        m_pid = std::exchange(other.m_pid, -1);
    }
    return *this;
}

int ServerProcess::wait() {
    int status = -1;
    if (m_pid > 0 && ::waitpid(m_pid, &status, 0) == m_pid) {
        m_pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return -1;
}

void ServerProcess::stop() {
    if (m_pid > 0) {
        ::kill(m_pid, SIGKILL);
        ::waitpid(m_pid, nullptr, 0);
        m_pid = -1;
    }
}

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot find a free port on 127.0.0.1");
    }
    ::close(fd);
    return ntohs(address.sin_port);
}

void wait_for_port(int port, pid_t server) {
    for (int i = 0; i < 200; ++i) {
        if (accepts(port)) {
            return;
        }
        if (::waitpid(server, nullptr, WNOHANG) == server) {
            throw std::runtime_error("the test server exited before listening on port " +
                                     std::to_string(port));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("the test server did not listen on port " + std::to_string(port));
}

SelfSignedCertificate::SelfSignedCertificate() {
    std::vector<std::string> argv{
        "openssl",  "req",           "-x509",   "-newkey",
        "rsa:2048", "-nodes",        "-days",   "2",
        "-subj",    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout",  key().string(),  "-out",    certificate().string()};
    ServerProcess openssl(argv, m_tmp / "openssl.out");
    int status = openssl.wait();
    if (status != 0 || !fs::exists(certificate())) {
        throw std::runtime_error("openssl could not make a test certificate: " +
                                 read_file(m_tmp / "openssl.out"));
    }
}

NginxServer::NginxServer(Auth auth, const SelfSignedCertificate* tls) : m_dir(m_tmp.path()) {
    fs::create_directories(m_dir / "root" / "cache");
    fs::create_directories(m_dir / "temp");
    write_file(m_dir / "htpasswd", "ci:{PLAIN}secret\n");
    std::string writes_need_auth =
        auth == Auth::writes
            ? "limit_except GET HEAD { auth_basic \"fbfs\"; auth_basic_user_file " +
                  (m_dir / "htpasswd").string() + "; }"
            : "";
    // A port can be taken between free_port() and nginx's bind: a few tries.
    for (int attempt = 0; attempt < 5; ++attempt) {
        m_port = free_port();
        std::string tls_listen;
        if (tls != nullptr) {
            m_tls_port = free_port();
            tls_listen = "    listen 127.0.0.1:" + std::to_string(m_tls_port) +
                         " ssl;\n    ssl_certificate " + tls->certificate().string() +
                         ";\n    ssl_certificate_key " + tls->key().string() + ";\n";
        }
        std::string d = m_dir.string();
        std::string config =
            "daemon off;\nmaster_process off;\npid " + d + "/nginx.pid;\nerror_log " + d +
            "/error.log warn;\nevents { worker_connections 256; }\nhttp {\n"
            "  log_format fbfs '$request_method $uri $status $body_bytes_sent $connection';\n"
            "  access_log " +
            d +
            "/access.log fbfs;\n"
            "  client_body_temp_path " +
            d +
            "/temp/body;\n"
            "  proxy_temp_path " +
            d +
            "/temp/proxy;\n"
            "  fastcgi_temp_path " +
            d +
            "/temp/fastcgi;\n"
            "  uwsgi_temp_path " +
            d +
            "/temp/uwsgi;\n"
            "  scgi_temp_path " +
            d +
            "/temp/scgi;\n"
            "  server {\n"
            "    listen 127.0.0.1:" +
            std::to_string(m_port) + ";\n" + tls_listen + "    root " + d +
            "/root;\n"
            "    location = /nginx-status { stub_status; access_log off; }\n"
            "    location / {\n"
            "      dav_methods PUT DELETE;\n"
            "      create_full_put_path on;\n"
            "      client_max_body_size 0;\n"
            "      " +
            writes_need_auth +
            "\n"
            "    }\n  }\n}\n";
        write_file(m_dir / "nginx.conf", config);
        ServerProcess process({"nginx", "-p", d, "-e", d + "/error.log", "-c", d + "/nginx.conf"},
                              m_dir / "nginx.out");
        try {
            wait_for_port(m_port, process.pid());
            if (m_tls_port != 0) {
                wait_for_port(m_tls_port, process.pid());
            }
            m_process = std::move(process);
            return;
        } catch (const std::runtime_error&) {
            if (attempt == 4) {
                throw std::runtime_error("nginx did not start: " + read_file(m_dir / "error.log") +
                                         read_file(m_dir / "nginx.out"));
            }
        }
    }
}

std::string NginxServer::url() const {
    return "http://127.0.0.1:" + std::to_string(m_port) + "/cache";
}

std::string NginxServer::https_url() const {
    if (m_tls_port == 0) {
        throw std::logic_error("this nginx was started without a certificate");
    }
    return "https://127.0.0.1:" + std::to_string(m_tls_port) + "/cache";
}

std::string NginxServer::url_with(const std::string& user, const std::string& password) const {
    return "http://" + user + ":" + password + "@127.0.0.1:" + std::to_string(m_port) + "/cache";
}

namespace {

// The body of GET `path` from 127.0.0.1:port over HTTP/1.0 (the connection ends with it).
std::string http_get(int port, const std::string& path) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string answer;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
        std::string request = "GET " + path + " HTTP/1.0\r\n\r\n";
        if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
            char buffer[4096];
            for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) {
                answer.append(buffer, static_cast<std::size_t>(n));
            }
        }
    }
    ::close(fd);
    auto body = answer.find("\r\n\r\n");
    return body == std::string::npos ? "" : answer.substr(body + 4);
}

}  // namespace

std::vector<LoggedRequest> NginxServer::requests() const {
    // nginx logs a request after answering it, so its client can be done before the line is
    // written. stub_status counts requests as they come: wait (5 s at most) until the log holds
    // as many as nginx took, less the status queries themselves, which are not logged.
    std::string last;
    for (int i = 0; i < 500; ++i) {
        ++m_status_queries;
        last = http_get(m_port, "/nginx-status");
        std::istringstream status(last);
        std::string line;
        std::getline(status, line);  // Active connections: N
        std::getline(status, line);  // server accepts handled requests
        std::uint64_t accepts = 0;
        std::uint64_t handled = 0;
        std::uint64_t total = 0;
        status >> accepts >> handled >> total;
        auto logged = read_log(m_dir / "access.log");
        if (total > 0 && logged.size() + m_status_queries >= total) {
            return logged;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw std::runtime_error("nginx's access log does not catch up with the requests it took (" +
                             std::to_string(read_log(m_dir / "access.log").size()) +
                             " logged; stub_status says: " + last + ")");
}

BadServer::BadServer(const std::string& mode) {
    fs::path script = fs::path(FBFS_SOURCE_DIR) / "tests" / "support" / "bad_http_server.py";
    write_file(m_tmp / "requests.log", "");
    write_file(m_tmp / "out", "");
    ServerProcess process({"python3", script.string(), mode, (m_tmp / "requests.log").string()},
                          m_tmp / "out");
    // Its first line says which port it took.
    for (int i = 0; i < 200 && m_port == 0; ++i) {
        std::string out = read_file(m_tmp / "out");
        if (auto at = out.find("port ");
            at != std::string::npos && out.find('\n', at) != out.npos) {
            m_port = std::atoi(out.c_str() + at + 5);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (m_port == 0) {
        throw std::runtime_error("bad_http_server.py did not start: " + read_file(m_tmp / "out"));
    }
    wait_for_port(m_port, process.pid());
    m_process = std::move(process);
}

std::string BadServer::url() const {
    return "http://127.0.0.1:" + std::to_string(m_port) + "/cache";
}

std::vector<LoggedRequest> BadServer::requests() const {
    return read_log(m_tmp / "requests.log");
}

}  // namespace fbfs::test
