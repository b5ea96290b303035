// RemoteFetcher: an ObjectFetcher (store/pool/object_fetcher.h) that GETs objects from an HTTP
// cache (http_cas.h), for a mount of a volume pulled without --eager.
//
// Thread-safe: each fetch takes an idle HttpCas of its own (made on demand, kept for the next
// fetch, so connections stay alive), so FUSE threads fetch different objects at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/base/thread_safety.h"
#include "store/pool/object_fetcher.h"
#include "store/remote/http_cas.h"

namespace fbfs {

class RemoteFetcher : public ObjectFetcher {
public:
    // Parses `url` (RemoteUrl::parse); no request is made yet.
    static Result<std::shared_ptr<RemoteFetcher>> open(std::string_view url, RemoteOptions options);

    Result<void> fetch(const ObjectId& id, const ObjectPool& pool) override;

private:
    RemoteFetcher(std::string url, RemoteOptions options)
        : m_url(std::move(url)), m_options(std::move(options)) {}

    const std::string m_url;
    const RemoteOptions m_options;
    Mutex m_mutex;
    std::vector<HttpCas> m_idle GUARDED_BY(m_mutex);  // clients no fetch is using
};

}  // namespace fbfs
