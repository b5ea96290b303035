// PlantedFetchTemps: temp files in a pool's tmp/ as fetches leave them, for the tests of their
// cleanup (store/remote/http_cas.h, remove_abandoned_fetches):
//   abandoned  "fetch-<pid of a process gone>-stale0", locked by nobody: a killed fetch's, to go;
//   locked     "fetch-<pid of a process gone>-held00", flock()ed by a live process this starts
//              (`flock FILE sleep`), as a fetch in another pid namespace holds it: to stay;
//   live       "fetch-<this process's pid>-alive0", unlocked: a fetch between creating its file
//              and locking it: to stay.
// The lock holder is killed and reaped on destruction (ServerProcess). Throws std::runtime_error
// if the holder does not take the lock within 10 s. Not thread-safe.
#pragma once

#include <filesystem>

#include "tests/support/http_servers.h"

namespace fbfs::test {

class PlantedFetchTemps {
public:
    explicit PlantedFetchTemps(const std::filesystem::path& tmp_dir);

    std::filesystem::path abandoned;
    std::filesystem::path locked;
    std::filesystem::path live;

private:
    ServerProcess m_holder;
};

}  // namespace fbfs::test
