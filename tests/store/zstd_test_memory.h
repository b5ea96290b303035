// ZstdTestMemory: memory for zstd (its documented ZSTD_customMem) that gives out the first
// `allowed` blocks from malloc and refuses every one after, so a test can make zstd fail to
// allocate at the step it chooses.
#pragma once

#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include <climits>
#include <cstdlib>

namespace fbfs::test {

struct ZstdTestMemory {
    int allowed = INT_MAX;
    int asked = 0;  // every allocation zstd asked for, given or refused

    ZSTD_customMem custom() { return {allocate, release, this}; }

private:
    static void* allocate(void* opaque, std::size_t size) {
        auto* self = static_cast<ZstdTestMemory*>(opaque);
        return ++self->asked > self->allowed ? nullptr : std::malloc(size);
    }
    static void release(void*, void* block) { std::free(block); }
};

}  // namespace fbfs::test
