// printable(): bytes from outside (a name in a pack, a manifest or a store, a stamp path) as a
// message may show them on a terminal, one line and no escape sequences.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace fbfs {

// How many bytes of a name a message shows at most.
inline constexpr std::size_t k_printable_max = 256;

// `bytes` with printable ASCII (0x20-0x7e) as it is, a backslash as "\\" and every other byte
// (control bytes, DEL, anything not ASCII) as "\xNN". At most `max` bytes are shown; a longer
// input ends in "... (N bytes)". Never fails.
std::string printable(std::string_view bytes, std::size_t max = k_printable_max);

}  // namespace fbfs
