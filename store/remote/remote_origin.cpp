#include "store/remote/remote_origin.h"

#include <fcntl.h>
#include <unistd.h>

#include "store/base/fd_io.h"
#include "store/base/unique_fd.h"

namespace fbfs {

namespace {

std::filesystem::path origin_path(const std::filesystem::path& root) {
    return root / "remote-origin";
}

}  // namespace

Result<std::optional<std::string>> read_remote_origin(const std::filesystem::path& store_root) {
    auto path = origin_path(store_root);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT) {
            return std::nullopt;
        }
        return errno_error(fmt::format("cannot open {}", path.string()));
    }
    std::string text;
    TRY(read_chunks(fd.get(), std::nullopt, nullptr, [&](std::string_view bytes) -> Result<void> {
        if (text.size() + bytes.size() > 4096) {
            return make_error(EINVAL,
                              fmt::format("{} is too long to be a URL (remove it)", path.string()));
        }
        text.append(bytes);
        return {};
    }));
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
    if (text.empty()) {
        return std::nullopt;
    }
    return text;
}

Result<void> write_remote_origin(const std::filesystem::path& store_root,
                                 std::string_view base_url) {
    auto path = origin_path(store_root);
    auto temp = store_root / "tmp" / fmt::format("remote-origin.{}", ::getpid());
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) {
        return errno_error(fmt::format("cannot create {}", temp.string()));
    }
    TRY(write_all(fd.get(), fmt::format("{}\n", base_url), temp.string()));
    fd.reset();
    if (::rename(temp.c_str(), path.c_str()) != 0) {
        int code = errno;
        ::unlink(temp.c_str());
        return sys_error(code, fmt::format("cannot write {}", path.string()));
    }
    return {};
}

}  // namespace fbfs
