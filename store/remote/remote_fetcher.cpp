#include "store/remote/remote_fetcher.h"

#include <spdlog/spdlog.h>

#include <optional>

namespace fbfs {

Result<std::shared_ptr<RemoteFetcher>> RemoteFetcher::open(std::string_view url,
                                                           RemoteOptions options) {
    TRY(RemoteUrl::parse(url));
    return std::shared_ptr<RemoteFetcher>(new RemoteFetcher(std::string(url), std::move(options)));
}

Result<void> RemoteFetcher::fetch(const ObjectId& id, const ObjectPool& pool) {
    std::optional<HttpCas> cas;
    {
        LockGuard lock(m_mutex);
        if (!m_idle.empty()) {
            cas.emplace(std::move(m_idle.back()));
            m_idle.pop_back();
        }
    }
    if (!cas) {
        TRY_ASSIGN(auto opened, HttpCas::open(m_url, m_options));
        cas.emplace(std::move(opened));
    }
    auto fetched = cas->fetch(std::span(&id, 1), pool);
    if (fetched) {
        spdlog::debug("fetched object {} ({} bytes) from {}", id.hex(), *fetched, cas->shown_url());
    }
    LockGuard lock(m_mutex);
    m_idle.push_back(std::move(*cas));
    if (!fetched) {
        return std::unexpected(fetched.error());
    }
    return {};
}

}  // namespace fbfs
