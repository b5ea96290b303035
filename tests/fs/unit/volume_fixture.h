// What the fs/ unit tests share: a fresh store with its "default" volume in a temp dir, and a
// source tree beside it for overlay tests. Real LMDB and real files; no kernel.
#pragma once

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "store/meta/store.h"
#include "store/meta/volume_tree.h"
#include "tests/support/must.h"
#include "tests/support/temp_dir.h"

namespace fbfs::test {

struct VolumeFixture {
    TempDir tmp;
    std::unique_ptr<Store> store = must(Store::open(tmp / "store", Store::Mode::create_if_missing));
    VolumeTree tree = must(VolumeTree::open(*store, "default", ::getuid(), ::getgid()));
    std::filesystem::path source = make_source();

    // The files of the pool's tmp/ whose names start with `prefix` (staging files, temp files).
    std::size_t temp_files(std::string_view prefix = "") const {
        std::size_t n = 0;
        for (const auto& entry : std::filesystem::directory_iterator(store->pool().tmp_dir())) {
            n += entry.path().filename().string().starts_with(prefix) ? 1 : 0;
        }
        return n;
    }

private:
    std::filesystem::path make_source() {
        std::filesystem::create_directory(tmp / "source");
        return tmp / "source";
    }
};

}  // namespace fbfs::test
