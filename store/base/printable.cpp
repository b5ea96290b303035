#include "store/base/printable.h"

#include <fmt/format.h>

#include <algorithm>

namespace fbfs {

std::string printable(std::string_view bytes, std::size_t max) {
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string shown;
    shown.reserve(std::min(bytes.size(), max) + 2);
    for (char c : bytes.substr(0, max)) {
        auto byte = static_cast<unsigned char>(c);
        if (byte == '\\') {
            shown += "\\\\";
        } else if (byte >= 0x20 && byte < 0x7f) {
            shown += c;
        } else {
            shown += "\\x";
            shown += k_hex[byte >> 4];
            shown += k_hex[byte & 0xf];
        }
    }
    if (bytes.size() > max) {
        shown += fmt::format("... ({} bytes)", bytes.size());
    }
    return shown;
}

}  // namespace fbfs
