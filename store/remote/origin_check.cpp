#include "store/remote/origin_check.h"

#include <memory>

#include "store/remote/http_cas.h"
#include "store/remote/remote_origin.h"

namespace fbfs {

Result<RemoteMissingCheck> origin_missing_check(const Store& store, RemoteOptions options) {
    TRY_ASSIGN(auto origin, read_remote_origin(store.root()));
    if (!origin) {
        return RemoteMissingCheck();
    }
    TRY_ASSIGN(auto cas, HttpCas::open(*origin, std::move(options)));
    auto shared = std::make_shared<HttpCas>(std::move(cas));
    return RemoteMissingCheck(
        [shared](std::span<const ObjectId> ids) { return shared->missing(ids); });
}

}  // namespace fbfs
