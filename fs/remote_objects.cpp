#include "fs/remote_objects.h"

#include <spdlog/spdlog.h>

#include "store/meta/store.h"
#include "store/remote/remote_fetcher.h"
#include "store/remote/remote_origin.h"
#include "store/remote/remote_url.h"

namespace fbfs {

Result<void> check_mount_remote(const std::string& remote) {
    TRY(RemoteOptions::from_environment());
    if (!remote.empty()) {
        TRY(RemoteUrl::parse(remote));
    }
    return {};
}

Result<void> attach_remote(Store& store, const std::string& remote) {
    std::string url = remote;
    if (url.empty()) {
        TRY_ASSIGN(auto origin, read_remote_origin(store.root()));
        if (!origin) {
            return {};
        }
        url = *origin;
    }
    TRY_ASSIGN(auto options, RemoteOptions::from_environment());
    TRY_ASSIGN(auto fetcher, RemoteFetcher::open(url, std::move(options)));
    TRY_ASSIGN(auto shown, RemoteUrl::parse(url));
    spdlog::info("objects missing from the pool are fetched from {}", shown.shown);
    store.set_object_fetcher(std::move(fetcher));
    return {};
}

}  // namespace fbfs
