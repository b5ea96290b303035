// zstd decompression contexts for the pack reader, set up in one place: allocated, and limited in
// the window a frame may ask for, with every failure an Error. So no decoder ever runs without
// the limit that keeps a hostile pack from making it allocate gigabytes.
//
// `memory` is where zstd takes its memory from (ZSTD_defaultCMem in fbfs; tests pass one that
// fails, as for the encoder in zstd_encoder.h).
#pragma once

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_customMem, ZSTD_createDCtx_advanced
#include <zstd.h>

#include <memory>

#include "store/base/error.h"

namespace fbfs::pack {

struct DctxFree {
    void operator()(ZSTD_DCtx* dctx) const { ZSTD_freeDCtx(dctx); }
};
using Dctx = std::unique_ptr<ZSTD_DCtx, DctxFree>;

// A decompression context that refuses frames needing a window of more than 2^window_log_max
// bytes. ENOMEM if zstd cannot allocate one, EINVAL if it refuses the limit.
Result<Dctx> make_dctx(int window_log_max, const ZSTD_customMem& memory = ZSTD_defaultCMem);

}  // namespace fbfs::pack
