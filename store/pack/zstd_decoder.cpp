#include "store/pack/zstd_decoder.h"

namespace fbfs::pack {

Result<Dctx> make_dctx(int window_log_max, const ZSTD_customMem& memory) {
    Dctx dctx(ZSTD_createDCtx_advanced(memory));
    if (!dctx) {
        return make_error(ENOMEM, "cannot allocate a zstd decoder (out of memory)");
    }
    std::size_t rc = ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, window_log_max);
    if (ZSTD_isError(rc)) {
        return make_error(EINVAL, fmt::format("zstd refuses a decoder window limit of 2^{}: {}",
                                              window_log_max, ZSTD_getErrorName(rc)));
    }
    return dctx;
}

}  // namespace fbfs::pack
