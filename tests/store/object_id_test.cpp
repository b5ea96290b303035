#include "store/base/object_id.h"

#include <catch2/catch.hpp>
#include <string>

using fbfs::ObjectId;
using fbfs::Sha256;

TEST_CASE("ObjectId: SHA-256 matches the FIPS 180-2 known answers") {
    CHECK(ObjectId::of(std::string_view("")).hex() ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(ObjectId::of(std::string_view("abc")).hex() ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(ObjectId::of(std::string_view("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
              .hex() == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("ObjectId: streaming a million 'a's in pieces gives the FIPS answer") {
    Sha256 hasher;
    std::string chunk(1000, 'a');
    for (int i = 0; i < 1000; ++i) {
        hasher.update(chunk.data(), chunk.size());
    }
    CHECK(hasher.finish().hex() ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    // finish() resets the hasher for the next object.
    hasher.update("abc", 3);
    CHECK(hasher.finish() == ObjectId::of(std::string_view("abc")));
}

TEST_CASE("ObjectId: hex round-trips and malformed hex is refused") {
    auto id = ObjectId::of(std::string_view("fbfs"));
    auto parsed = ObjectId::parse(id.hex());
    REQUIRE(parsed);
    CHECK(*parsed == id);
    std::string upper = id.hex();
    for (auto& c : upper) {
        c = static_cast<char>(std::toupper(c));
    }
    CHECK(ObjectId::parse(upper) == id);
    CHECK_FALSE(ObjectId::parse(""));
    CHECK_FALSE(ObjectId::parse(id.hex().substr(1)));
    CHECK_FALSE(ObjectId::parse(id.hex() + "0"));
    std::string bad = id.hex();
    bad[10] = 'g';
    CHECK_FALSE(ObjectId::parse(bad));
    CHECK(ObjectId::from_raw(id.raw()) == id);
    CHECK_FALSE(ObjectId::from_raw("short"));
}
