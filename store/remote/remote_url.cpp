#include "store/remote/remote_url.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>
#include <optional>

namespace fbfs {

namespace {

struct UrlDeleter {
    void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;

// One part of a parsed URL; nullopt if the URL has none.
std::optional<std::string> url_part(CURLU* url, CURLUPart part, unsigned flags = 0) {
    char* value = nullptr;
    if (curl_url_get(url, part, &value, flags) != CURLUE_OK || value == nullptr) {
        return std::nullopt;
    }
    std::string copy(value);
    curl_free(value);
    return copy;
}

// What a message may show of a URL that did not parse: never what could be a password.
std::string redact_unparsed(std::string_view url) {
    auto at = url.rfind('@');
    if (at == std::string_view::npos) {
        return std::string(url);
    }
    auto scheme = url.find("://");
    std::string_view head = scheme == std::string_view::npos ? "" : url.substr(0, scheme + 3);
    return fmt::format("{}***{}", head, url.substr(at));
}

}  // namespace

void init_curl_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Result<RemoteUrl> RemoteUrl::parse(std::string_view text) {
    init_curl_once();
    auto refuse = [&](std::string_view why) {
        return make_error(EINVAL, fmt::format("remote URL {} {} (give one like "
                                              "https://cache.example:9090/fbfs)",
                                              redact_unparsed(text), why));
    };
    UrlHandle url(curl_url());
    if (!url) {
        return make_error(ENOMEM, "cannot parse a remote URL: out of memory");
    }
    std::string copy(text);
    if (curl_url_set(url.get(), CURLUPART_URL, copy.c_str(), 0) != CURLUE_OK) {
        return refuse("is not a URL");
    }
    auto scheme = url_part(url.get(), CURLUPART_SCHEME);
    if (!scheme || (*scheme != "http" && *scheme != "https")) {
        return refuse("is not http:// or https://");
    }
    if (url_part(url.get(), CURLUPART_QUERY) || url_part(url.get(), CURLUPART_FRAGMENT)) {
        return refuse("has a query or fragment, which a cache's base URL cannot have");
    }
    RemoteUrl remote;
    remote.user = url_part(url.get(), CURLUPART_USER, CURLU_URLDECODE).value_or("");
    remote.password = url_part(url.get(), CURLUPART_PASSWORD, CURLU_URLDECODE).value_or("");
    bool has_credentials = !remote.user.empty() || !remote.password.empty();
    curl_url_set(url.get(), CURLUPART_USER, nullptr, 0);
    curl_url_set(url.get(), CURLUPART_PASSWORD, nullptr, 0);
    curl_url_set(url.get(), CURLUPART_OPTIONS, nullptr, 0);
    auto base = url_part(url.get(), CURLUPART_URL);
    if (!base) {
        return refuse("is not a URL");
    }
    while (!base->empty() && base->back() == '/') {
        base->pop_back();
    }
    remote.base = *base;
    remote.shown = remote.base;
    if (has_credentials) {
        remote.shown.insert(scheme->size() + 3, "***@");
    }
    return remote;
}

}  // namespace fbfs
