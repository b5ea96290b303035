#include "store/base/printable.h"

#include <catch2/catch.hpp>
#include <string>

using fbfs::printable;

TEST_CASE("printable: printable ASCII is shown as it is", "[store][printable]") {
    CHECK(printable("src/main.cpp") == "src/main.cpp");
    CHECK(printable("a name with 'quotes' and \"more\"") == "a name with 'quotes' and \"more\"");
    CHECK(printable("") == "");
}

TEST_CASE("printable: control bytes, DEL and bytes beyond ASCII become \\xNN",
          "[store][printable]") {
    CHECK(printable("a\x1b[2Jb") == "a\\x1b[2Jb");
    CHECK(printable("line\nbreak\r") == "line\\x0abreak\\x0d");
    CHECK(printable(std::string("nul\0byte", 8)) == "nul\\x00byte");
    CHECK(printable("\x7f") == "\\x7f");
    CHECK(printable("caf\xc3\xa9") == "caf\\xc3\\xa9");  // UTF-8 too: no terminal guesses
    CHECK(printable("\xff\xfe") == "\\xff\\xfe");        // not UTF-8 at all
}

TEST_CASE("printable: a backslash is doubled, so an escape in the name is not taken for one",
          "[store][printable]") {
    CHECK(printable("a\\x1b") == "a\\\\x1b");
    CHECK(printable("a\x1b") != printable("a\\x1b"));
}

TEST_CASE("printable: a long name is cut at the limit and says how long it was",
          "[store][printable]") {
    std::string name(1000, 'n');
    std::string shown = printable(name);
    CHECK(shown == std::string(fbfs::k_printable_max, 'n') + "... (1000 bytes)");
    CHECK(printable(std::string(fbfs::k_printable_max, 'n')) ==
          std::string(fbfs::k_printable_max, 'n'));
    CHECK(printable("\n\n\n", 2) == "\\x0a\\x0a... (3 bytes)");
}
