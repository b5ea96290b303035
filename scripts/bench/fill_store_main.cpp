// The store half of scripts/bench/ci-cycles: fills a store with VOLUMES volumes of FILES files
// each, written straight into LMDB (a mount would take minutes for 100 000 files), every file its
// own object except SHARED percent named by every volume. Each volume is dated one second after
// the one before, so gc has an order to follow.
// Usage: fill_store_main STORE VOLUMES FILES SHARED_PERCENT
#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "store/meta/snapshot_tables.h"
#include "store/meta/store.h"
#include "store/meta/volume_times.h"

namespace {

fbfs::Result<void> fill_volume(fbfs::Store& store, int volume, int files, int shared) {
    fbfs::VolumeSnapshot s;
    s.name = fmt::format("v{:03}", volume);
    fbfs::InodeRecord root;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    s.inodes[fbfs::k_root_inode] = root;
    for (int i = 0; i < files; ++i) {
        bool common = i * 100 < files * shared;
        std::string bytes = common ? fmt::format("shared object {}", i)
                                   : fmt::format("object {} of volume {}", i, volume);
        TRY_ASSIGN(auto put, store.pool().put_bytes(bytes));
        fbfs::InodeRecord file;
        file.mode = S_IFREG | 0644;
        file.nlink = 1;
        file.size = put.size;
        file.object = put.id;
        auto ino = static_cast<fbfs::InodeNumber>(2 + i);
        s.inodes[ino] = file;
        s.entries.push_back({fbfs::k_root_inode,
                             fmt::format("f{:07}", i),
                             {ino, static_cast<std::uint8_t>(DT_REG)}});
    }
    s.next_inode = static_cast<fbfs::InodeNumber>(2 + files);
    TRY(store.env().write(
        [&](fbfs::LmdbTxn& txn) { return fbfs::replace_volume(txn, store.tables(), s); }));
    return fbfs::note_volume_mounted(store, s.name,
                                     fbfs::now_ns() - (1000 - volume) * 1'000'000'000LL);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        fmt::print(stderr, "usage: {} STORE VOLUMES FILES SHARED_PERCENT\n", argv[0]);
        return 2;
    }
    auto store = fbfs::Store::open(argv[1], fbfs::Store::Mode::create_if_missing);
    if (!store) {
        fmt::print(stderr, "{}\n", store.error().message);
        return 1;
    }
    int volumes = std::atoi(argv[2]);
    for (int v = 0; v < volumes; ++v) {
        if (auto ok = fill_volume(**store, v, std::atoi(argv[3]), std::atoi(argv[4])); !ok) {
            fmt::print(stderr, "{}\n", ok.error().message);
            return 1;
        }
    }
    return 0;
}
