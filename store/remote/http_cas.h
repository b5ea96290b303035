// HttpCas: the HTTP cache protocol that bazel-remote and nginx with WebDAV speak (and ccache's and
// sccache's remote back ends): GET, HEAD and PUT on <base>/cas/<sha256 hex> for content and on
// <base>/ac/<64 hex> for named entries. 200 (HEAD, GET), 200/201/204 (PUT) and 404 are answers;
// any other status is an Error naming it (Transport::status_error).
//
// Content from cas/ is checked against its id before anyone sees it: bytes that hash to another
// id are refused (EBADMSG) and nothing is kept. Objects fetched into an ObjectPool enter it only
// by the pool's atomic publish, so a failed or cut-short fetch leaves no file behind.
//
// Move-only and not thread-safe (one Transport: one batch at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/base/error.h"
#include "store/base/object_id.h"
#include "store/pool/object_pool.h"
#include "store/remote/transport.h"

namespace fbfs {

// An object to upload and the file holding its bytes.
struct Upload {
    ObjectId id;
    std::filesystem::path path;
};

// The file holding the bytes of an object the server lacks, or an Error (which ends the upload).
using UploadSource = std::function<Result<std::filesystem::path>(const ObjectId&)>;

// Removes the temp files that fetches into `pool` left when their process was killed (their
// pid gone, their lock free: owned_temp_file.h); returns how many. Best effort.
std::size_t remove_abandoned_fetches(const ObjectPool& pool);

class HttpCas {
public:
    // Parses `url` (RemoteUrl::parse); no request is made yet.
    static Result<HttpCas> open(std::string_view url, RemoteOptions options);

    // HEADs cas/<id> of every id, in parallel; the ids the server answered 404 for, in the order
    // given.
    Result<std::vector<ObjectId>> missing(std::span<const ObjectId> ids);
    // PUTs every file to cas/<id>, in parallel. Fails if a file cannot be opened.
    Result<void> upload(std::span<const Upload> uploads);
    // HEADs cas/<id> of every id and PUTs each one the server answers 404 for as soon as it does,
    // from the file `source` names; `contents` go up alongside (to cas/<their sha256>, no HEAD).
    // One batch: up to options.probes HEADs and options.parallel PUTs at once. Returns the ids
    // it PUT, in the order their HEADs answered. On failure, some objects may be up already.
    Result<std::vector<ObjectId>> upload_missing(std::span<const ObjectId> ids,
                                                 const UploadSource& source,
                                                 std::span<const std::string> contents);
    // GETs cas/<id> of every id into `pool`, in parallel, each checked by hash on the way in.
    // Ids the pool holds already are skipped. Returns how many bytes it fetched.
    Result<std::uint64_t> fetch(std::span<const ObjectId> ids, const ObjectPool& pool);

    // GET of cas/<id> into memory, checked by hash; ENOENT if the server has none. At most
    // `limit` bytes (EFBIG past it).
    Result<std::string> get_content(const ObjectId& id, std::size_t limit);
    // PUT of bytes to cas/<their sha256>; returns the id.
    Result<ObjectId> put_content(std::string_view bytes);
    // GET of ac/<key>: nullopt on 404. At most `limit` bytes.
    Result<std::optional<std::string>> get_entry(const ObjectId& key, std::size_t limit);
    // PUT of ac/<key>.
    Result<void> put_entry(const ObjectId& key, std::string_view value);

    // The base URL with any credentials redacted, for messages.
    const std::string& shown_url() const { return m_transport.url().shown; }
    // The base URL without credentials: what a store may record (remote_origin.h).
    const std::string& base_url() const { return m_transport.url().base; }

private:
    explicit HttpCas(Transport transport) : m_transport(std::move(transport)) {}
    Result<std::optional<std::string>> get_bytes(std::string path, std::size_t limit);

    Transport m_transport;
};

}  // namespace fbfs
