// zstd compression for the pack writer, in one place: a context is allocated and set up here, and
// every failure — no memory, a setting zstd refuses, an error while compressing — is an Error. So
// no null context reaches zstd, and no section is ever written empty.
//
// `memory` is where zstd takes its memory from: zstd's own allocator (ZSTD_defaultCMem) in fbfs.
// Tests pass an allocator that fails (zstd's documented ZSTD_customMem), which is the only way
// to make these paths run.
#pragma once

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_customMem, ZSTD_createCCtx_advanced
#include <zstd.h>

#include <memory>
#include <string>
#include <string_view>

#include "store/base/error.h"

namespace fbfs::pack {

struct CctxFree {
    void operator()(ZSTD_CCtx* cctx) const { ZSTD_freeCCtx(cctx); }
};
using Cctx = std::unique_ptr<ZSTD_CCtx, CctxFree>;

// A compression context. ENOMEM if zstd cannot allocate one.
Result<Cctx> make_cctx(const ZSTD_customMem& memory = ZSTD_defaultCMem);

// Sets `param` of `cctx` to `value`; an Error naming `name` if zstd refuses it.
Result<void> set_parameter(ZSTD_CCtx* cctx, ZSTD_cParameter param, int value,
                           std::string_view name);

// An Error for zstd's result `rc` (ZSTD_isError(rc)) while it worked on `what`: ENOMEM when it
// could not allocate, EIO otherwise.
std::unexpected<Error> zstd_error(std::size_t rc, std::string_view what);

// `raw` as one zstd frame at `level`, recording its size (as ZSTD_compress makes it). An Error
// naming `what` if zstd fails.
Result<std::string> compress_frame(std::string_view raw, int level, std::string_view what,
                                   const ZSTD_customMem& memory = ZSTD_defaultCMem);

}  // namespace fbfs::pack
