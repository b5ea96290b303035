// The put half of scripts/bench/hash: puts one file into an object pool and prints its id the way
// sha256sum prints a digest. Usage: put_main STORE_DIR FILE (STORE_DIR is created if missing).
#include <fmt/format.h>

#include <filesystem>
#include <system_error>

#include "store/pool/object_pool.h"

int main(int argc, char** argv) {
    if (argc != 3) {
        fmt::print(stderr, "usage: {} STORE_DIR FILE\n", argv[0]);
        return 2;
    }
    std::error_code ec;
    std::filesystem::create_directories(argv[1], ec);
    auto pool = fbfs::ObjectPool::open(argv[1]);
    if (!pool) {
        fmt::print(stderr, "{}\n", pool.error().message);
        return 1;
    }
    auto put = pool->put_path(argv[2]);
    if (!put) {
        fmt::print(stderr, "{}\n", put.error().message);
        return 1;
    }
    fmt::print("{}  {}\n", put->id.hex(), argv[2]);
    return 0;
}
