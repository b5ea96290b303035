#include "store/pack/zstd_encoder.h"

#include <zstd_errors.h>

namespace fbfs::pack {

Result<Cctx> make_cctx(const ZSTD_customMem& memory) {
    Cctx cctx(ZSTD_createCCtx_advanced(memory));
    if (!cctx) {
        return make_error(ENOMEM, "cannot allocate a zstd encoder (out of memory)");
    }
    return cctx;
}

Result<void> set_parameter(ZSTD_CCtx* cctx, ZSTD_cParameter param, int value,
                           std::string_view name) {
    std::size_t rc = ZSTD_CCtx_setParameter(cctx, param, value);
    if (ZSTD_isError(rc)) {
        return make_error(
            EINVAL, fmt::format("zstd refuses {} {}: {}", name, value, ZSTD_getErrorName(rc)));
    }
    return {};
}

std::unexpected<Error> zstd_error(std::size_t rc, std::string_view what) {
    bool no_memory = ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation;
    return make_error(no_memory ? ENOMEM : EIO,
                      fmt::format("cannot compress {}: zstd says {}", what, ZSTD_getErrorName(rc)));
}

Result<std::string> compress_frame(std::string_view raw, int level, std::string_view what,
                                   const ZSTD_customMem& memory) {
    TRY_ASSIGN(auto cctx, make_cctx(memory));
    std::string stored(ZSTD_compressBound(raw.size()), '\0');
    std::size_t n =
        ZSTD_compressCCtx(cctx.get(), stored.data(), stored.size(), raw.data(), raw.size(), level);
    if (ZSTD_isError(n)) {
        return zstd_error(n, what);
    }
    stored.resize(n);
    return stored;
}

}  // namespace fbfs::pack
