// Owned temp files: named for their process, locked while it has them, and removed by the next
// caller only once both the process and the lock are gone.
#include "store/base/owned_temp_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "tests/support/fetch_temps.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using namespace fbfs;
using fbfs::test::TempDir;

TEST_CASE("OwnedTempFile: it names its process and is locked for as long as it is open",
          "[store]") {
    TempDir tmp;
    auto temp = create_owned_temp(tmp.path(), "fetch-");
    REQUIRE(temp);
    std::string name = temp->path.filename().string();
    CHECK(name.starts_with("fetch-" + std::to_string(::getpid()) + "-"));
    CHECK(name.size() == std::string("fetch-").size() + std::to_string(::getpid()).size() + 7);

    UniqueFd other(::open(temp->path.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(other);
    CHECK(::flock(other.get(), LOCK_EX | LOCK_NB) != 0);
    CHECK_FALSE(is_abandoned_temp(tmp.path(), name, "fetch-"));
    CHECK(remove_abandoned_temps(tmp.path(), "fetch-") == 0);
    CHECK(fs::exists(temp->path));

    temp->fd.reset();
    CHECK(::flock(other.get(), LOCK_EX | LOCK_NB) == 0);
    // Unlocked, but its process lives: still its own.
    CHECK_FALSE(is_abandoned_temp(tmp.path(), name, "fetch-"));
}

TEST_CASE("OwnedTempFile: only files whose process is gone and that nobody locks are removed",
          "[store]") {
    TempDir tmp;
    test::PlantedFetchTemps planted(tmp / "tmp");
    test::write_file(tmp / "tmp" / "fetch-a1B2c3", "an older fbfs's: its writer cannot be told");
    test::write_file(tmp / "tmp" / "staging-1-5", "another prefix");

    CHECK(remove_abandoned_temps(tmp / "tmp", "fetch-") == 1);
    CHECK_FALSE(fs::exists(planted.abandoned));
    CHECK(fs::exists(planted.locked));
    CHECK(fs::exists(planted.live));
    CHECK(fs::exists(tmp / "tmp" / "fetch-a1B2c3"));
    CHECK(fs::exists(tmp / "tmp" / "staging-1-5"));
    CHECK(remove_abandoned_temps(tmp / "nowhere", "fetch-") == 0);
}
