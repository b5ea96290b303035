#include "store/remote/http_cas.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <memory>

#include "store/base/fd_io.h"
#include "store/base/owned_temp_file.h"
#include "store/base/unique_fd.h"

namespace fbfs {

namespace fs = std::filesystem;

namespace {

std::string cas_path(const ObjectId& id) {
    return "cas/" + id.hex();
}
std::string ac_path(const ObjectId& key) {
    return "ac/" + key.hex();
}

bool put_accepted(long status) {
    return status == 200 || status == 201 || status == 204;
}

// The name of fetch temp files in a pool's tmp/: "fetch-<pid>-XXXXXX" (owned_temp_file.h).
constexpr std::string_view k_fetch_prefix = "fetch-";

// One object on its way from the server into the pool: a file of the pool's tmp/, locked while
// this process has it, and the hash of what it holds so far. Removed on destruction unless
// published.
class Fetching {
public:
    Fetching(const ObjectPool& pool, ObjectId id) : m_pool(pool), m_id(id) {}
    ~Fetching() {
        if (!m_path.empty()) {
            ::unlink(m_path.c_str());
        }
    }
    Fetching(const Fetching&) = delete;
    Fetching& operator=(const Fetching&) = delete;

    // Before each try: an empty file.
    Result<void> restart() {
        m_hash = Sha256();
        m_size = 0;
        if (!m_fd) {
            TRY_ASSIGN(auto temp,
                       named_if_full(create_owned_temp(m_pool.tmp_dir(), k_fetch_prefix)));
            m_fd = std::move(temp.fd);
            m_path = std::move(temp.path);
            return {};
        }
        if (::ftruncate(m_fd.get(), 0) != 0 || ::lseek(m_fd.get(), 0, SEEK_SET) != 0) {
            return errno_error(fmt::format("cannot empty {}", m_path.string()));
        }
        return {};
    }

    Result<void> receive(std::string_view bytes) {
        m_hash.update(bytes.data(), bytes.size());
        m_size += bytes.size();
        return named_if_full(write_all(m_fd.get(), bytes, m_path.string()));
    }

    // Checks the bytes against the id and publishes them. An Error leaves nothing behind.
    Result<std::uint64_t> publish(const Transport& transport, const Request& request) {
        ObjectId got = m_hash.finish();
        if (got != m_id) {
            return std::unexpected(transport.request_error(
                request, EBADMSG,
                fmt::format("the server sent {} bytes whose SHA-256 is {}: refused, nothing kept "
                            "(the cache holds a damaged object; remove it there)",
                            m_size, got.hex())));
        }
        if (::fchmod(m_fd.get(), 0444) != 0) {
            return errno_error(fmt::format("cannot chmod {}", m_path.string()));
        }
        // Published with its lock still held: until it is an object, it is ours.
        TRY(m_pool.publish(m_path, m_id, m_size));
        m_path.clear();
        m_fd.reset();
        return m_size;
    }

private:
    // A full disk (or quota) named as the store's, with the fix; other results as they are.
    template <class T>
    Result<T> named_if_full(Result<T> result) const {
        if (result || (result.error().code != ENOSPC && result.error().code != EDQUOT)) {
            return result;
        }
        return make_error(
            result.error().code,
            fmt::format("cannot fetch object {} into the store {}: {} (free space "
                        "on its disk; a pull without --eager fetches only what is "
                        "read)",
                        m_id.hex(), m_pool.root().string(), std::strerror(result.error().code)));
    }

    const ObjectPool& m_pool;
    ObjectId m_id;
    UniqueFd m_fd;
    fs::path m_path;
    Sha256 m_hash;
    std::uint64_t m_size = 0;
};

}  // namespace

std::size_t remove_abandoned_fetches(const ObjectPool& pool) {
    return remove_abandoned_temps(pool.tmp_dir(), k_fetch_prefix);
}

Result<HttpCas> HttpCas::open(std::string_view url, RemoteOptions options) {
    TRY_ASSIGN(auto parsed, RemoteUrl::parse(url));
    return HttpCas(Transport(std::move(parsed), std::move(options)));
}

Result<std::vector<ObjectId>> HttpCas::missing(std::span<const ObjectId> ids) {
    std::vector<Request> requests(ids.size());
    std::vector<bool> absent(ids.size(), false);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        requests[i].method = Request::Method::head;
        requests[i].path = cas_path(ids[i]);
        requests[i].done = [this, &requests, &absent, i](long status) -> Result<void> {
            if (status == 404) {
                absent[i] = true;
                return {};
            }
            if (status == 200) {
                return {};
            }
            return std::unexpected(m_transport.status_error(requests[i], status));
        };
    }
    TRY(m_transport.run(requests));
    std::vector<ObjectId> lacking;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (absent[i]) {
            lacking.push_back(ids[i]);
        }
    }
    return lacking;
}

namespace {

// Makes `request` (which must stay where it is until it has run) a PUT of the file at `path` to
// cas/<id>. The file is opened when the request starts and closed when it ends: a push of 100 000
// objects holds no more fds than transfers.
void make_file_put(Request& request, const Transport& transport, const ObjectId& id,
                   fs::path path) {
    auto fd = std::make_shared<UniqueFd>();
    request.method = Request::Method::put;
    request.path = cas_path(id);
    request.restart = [&request, fd, id, path = std::move(path)]() -> Result<void> {
        if (*fd) {
            return {};
        }
        UniqueFd opened(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        struct stat st {};
        if (!opened || ::fstat(opened.get(), &st) != 0) {
            return errno_error(fmt::format("cannot open object {} at {}", id.hex(), path.string()));
        }
        request.body_fd = opened.get();
        request.body_size = static_cast<std::uint64_t>(st.st_size);
        *fd = std::move(opened);
        return {};
    };
    request.done = [&request, &transport, fd](long status) -> Result<void> {
        fd->reset();
        if (put_accepted(status)) {
            return {};
        }
        return std::unexpected(transport.status_error(request, status));
    };
}

// Makes `request` (which must stay where it is until it has run) a PUT of `body` to `path`.
void make_bytes_put(Request& request, const Transport& transport, std::string path,
                    std::string body) {
    request.method = Request::Method::put;
    request.path = std::move(path);
    request.body = std::move(body);
    request.done = [&request, &transport](long status) -> Result<void> {
        if (put_accepted(status)) {
            return {};
        }
        return std::unexpected(transport.status_error(request, status));
    };
}

}  // namespace

Result<void> HttpCas::upload(std::span<const Upload> uploads) {
    std::vector<Request> requests(uploads.size());
    for (std::size_t i = 0; i < uploads.size(); ++i) {
        make_file_put(requests[i], m_transport, uploads[i].id, uploads[i].path);
    }
    return m_transport.run(requests);
}

Result<std::vector<ObjectId>> HttpCas::upload_missing(std::span<const ObjectId> ids,
                                                      const UploadSource& source,
                                                      std::span<const std::string> contents) {
    std::deque<Request> puts;
    for (const std::string& bytes : contents) {
        make_bytes_put(puts.emplace_back(), m_transport, cas_path(ObjectId::of(bytes)), bytes);
    }
    std::vector<ObjectId> uploaded;
    std::vector<Request> heads(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
        heads[i].method = Request::Method::head;
        heads[i].path = cas_path(ids[i]);
        heads[i].done = [&, i](long status) -> Result<void> {
            if (status == 200) {
                return {};
            }
            if (status != 404) {
                return std::unexpected(m_transport.status_error(heads[i], status));
            }
            TRY_ASSIGN(auto path, source(ids[i]));
            make_file_put(puts.emplace_back(), m_transport, ids[i], std::move(path));
            uploaded.push_back(ids[i]);
            return {};
        };
    }
    TRY(m_transport.run(heads, &puts));
    return uploaded;
}

Result<std::uint64_t> HttpCas::fetch(std::span<const ObjectId> ids, const ObjectPool& pool) {
    std::vector<ObjectId> wanted;
    for (const ObjectId& id : ids) {
        if (!pool.contains(id)) {
            wanted.push_back(id);
        }
    }
    std::vector<Request> requests(wanted.size());
    std::vector<std::unique_ptr<Fetching>> files(wanted.size());
    std::uint64_t fetched = 0;
    for (std::size_t i = 0; i < wanted.size(); ++i) {
        Request& request = requests[i];
        request.method = Request::Method::get;
        request.path = cas_path(wanted[i]);
        // The temp file is made when the request starts and goes when it ends.
        request.restart = [&, i]() -> Result<void> {
            if (!files[i]) {
                files[i] = std::make_unique<Fetching>(pool, wanted[i]);
            }
            return files[i]->restart();
        };
        request.receive = [&, i](std::string_view bytes) { return files[i]->receive(bytes); };
        request.done = [&, i](long status) -> Result<void> {
            auto file = std::move(files[i]);
            if (status != 200) {
                return std::unexpected(m_transport.status_error(requests[i], status));
            }
            TRY_ASSIGN(auto size, file->publish(m_transport, requests[i]));
            fetched += size;
            return {};
        };
    }
    TRY(m_transport.run(requests));
    return fetched;
}

Result<std::optional<std::string>> HttpCas::get_bytes(std::string path, std::size_t limit) {
    std::string body;
    std::optional<bool> found;
    Request request;
    request.method = Request::Method::get;
    request.path = std::move(path);
    request.restart = [&]() -> Result<void> {
        body.clear();
        return {};
    };
    request.receive = [&](std::string_view bytes) -> Result<void> {
        if (body.size() + bytes.size() > limit) {
            return std::unexpected(m_transport.request_error(
                request, EFBIG, fmt::format("the answer is larger than {} bytes", limit)));
        }
        body.append(bytes);
        return {};
    };
    request.done = [&](long status) -> Result<void> {
        if (status == 200) {
            found = true;
            return {};
        }
        if (status == 404) {
            found = false;
            return {};
        }
        return std::unexpected(m_transport.status_error(request, status));
    };
    TRY(m_transport.run(std::span(&request, 1)));
    if (!found.value_or(false)) {
        return std::nullopt;
    }
    return body;
}

Result<std::string> HttpCas::get_content(const ObjectId& id, std::size_t limit) {
    TRY_ASSIGN(auto body, get_bytes(cas_path(id), limit));
    Request shown;
    shown.path = cas_path(id);
    if (!body) {
        return std::unexpected(m_transport.status_error(shown, 404));
    }
    ObjectId got = ObjectId::of(*body);
    if (got != id) {
        return std::unexpected(m_transport.request_error(
            shown, EBADMSG,
            fmt::format("the server sent {} bytes whose SHA-256 is {}: refused (the cache holds a "
                        "damaged object; remove it there)",
                        body->size(), got.hex())));
    }
    return std::move(*body);
}

Result<ObjectId> HttpCas::put_content(std::string_view bytes) {
    ObjectId id = ObjectId::of(bytes);
    Request request;
    make_bytes_put(request, m_transport, cas_path(id), std::string(bytes));
    TRY(m_transport.run(std::span(&request, 1)));
    return id;
}

Result<std::optional<std::string>> HttpCas::get_entry(const ObjectId& key, std::size_t limit) {
    return get_bytes(ac_path(key), limit);
}

Result<void> HttpCas::put_entry(const ObjectId& key, std::string_view value) {
    Request request;
    make_bytes_put(request, m_transport, ac_path(key), std::string(value));
    return m_transport.run(std::span(&request, 1));
}

}  // namespace fbfs
