// RemoteUrl: the base URL of an HTTP CAS (bazel-remote, nginx with WebDAV), split into what
// requests use and what messages may show.
//
// Credentials in the URL's user info ("https://user:secret@host/cache") are taken out of the URL:
// requests send them as basic authentication, and every message shows the URL with the password
// and user name replaced by "***". A plain value type.
#pragma once

#include <string>
#include <string_view>

#include "store/base/error.h"

namespace fbfs {

struct RemoteUrl {
    std::string base;      // scheme://host[:port]/path, no user info, no trailing slash
    std::string user;      // percent-decoded; empty if the URL has no user info
    std::string password;  // percent-decoded
    std::string shown;     // for messages: base with "***@" in place of any user info

    // Parses an http:// or https:// URL. EINVAL with one line naming the problem (the URL shown
    // redacted) for anything else: no scheme, another scheme, no host, a query or fragment.
    static Result<RemoteUrl> parse(std::string_view url);
};

// Initializes libcurl once per process (thread-safe; later calls do nothing).
void init_curl_once();

}  // namespace fbfs
