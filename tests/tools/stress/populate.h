// The seeded starting tree of one stress process (fbfs_stress --populate): what an overlay's
// --source holds before the stress runs over it, made the same way on every filesystem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace fbfs::stress {

// Fills the working directory with `files` regular files (sf<n>, up to 16 KiB of seeded bytes,
// a few modes), about one directory (sd<n>, up to 3 deep) for every 20 files and a symlink
// (sl<n>) for every 10, from `seed` and `index`. No hard links: an overlay shows lower links as
// separate files, as overlayfs does. Returns false, with what failed in `line`, if a call fails;
// else a summary in `line`.
bool populate(std::uint64_t seed, unsigned index, std::size_t files, std::string& line);

}  // namespace fbfs::stress
