// Including this header sets the process umask to 022 before main(), so that tests asserting the
// modes of new files get the usual ones whatever umask the caller ran them with. The umask it
// replaced is kept in k_previous_umask.
#pragma once

#include <sys/stat.h>

namespace fbfs::test {

// One variable for the whole binary, however many test files include this.
[[maybe_unused]] inline const mode_t k_previous_umask = ::umask(022);

}  // namespace fbfs::test
