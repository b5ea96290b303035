#include "store/meta/schema.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

using fbfs::DirentValue;
using fbfs::InodeRecord;
using fbfs::LowerStamp;
using fbfs::ObjectId;
using fbfs::VolumeRecord;

namespace {

// A record with every field distinct and non-zero, so a swapped or dropped field shows.
InodeRecord sample_file() {
    InodeRecord r;
    r.mode = S_IFREG | 0640;
    r.uid = 1000;
    r.gid = 1001;
    r.nlink = 3;
    r.size = 0x1'2345'6789;
    r.rdev = 0;
    r.atime = 1'700'000'000'123'456'789;
    r.mtime = -5;  // before the epoch
    r.ctime = 1'700'000'002'000'000'001;
    r.object = ObjectId::of(std::string_view("contents"));
    return r;
}

}  // namespace

TEST_CASE("InodeRecord: a regular file with an object round-trips", "[store][schema]") {
    InodeRecord r = sample_file();
    auto decoded = InodeRecord::decode(r.encode());
    REQUIRE(decoded);
    CHECK(*decoded == r);
    REQUIRE(decoded->object.has_value());
    CHECK(*decoded->object == ObjectId::of(std::string_view("contents")));
}

TEST_CASE("InodeRecord: a file without an object decodes without one", "[store][schema]") {
    InodeRecord r = sample_file();
    r.object.reset();
    r.size = 0;
    auto decoded = InodeRecord::decode(r.encode());
    REQUIRE(decoded);
    CHECK(*decoded == r);
    CHECK_FALSE(decoded->object.has_value());
    CHECK(r.encode().size() < sample_file().encode().size());
}

TEST_CASE("InodeRecord: a symlink keeps its target byte for byte", "[store][schema]") {
    InodeRecord r;
    r.mode = S_IFLNK | 0777;
    r.nlink = 1;
    r.symlink_target = std::string("../a b/\xff\0c", 10);
    r.size = r.symlink_target.size();
    auto decoded = InodeRecord::decode(r.encode());
    REQUIRE(decoded);
    CHECK(*decoded == r);
    CHECK(decoded->symlink_target == std::string("../a b/\xff\0c", 10));
    CHECK(decoded->is_symlink());
}

TEST_CASE("InodeRecord: flags and device numbers round-trip, with or without an object",
          "[store][schema]") {
    InodeRecord dir;
    dir.mode = S_IFDIR | 0755;
    dir.nlink = 2;
    dir.flags = InodeRecord::k_opaque;
    auto decoded_dir = InodeRecord::decode(dir.encode());
    REQUIRE(decoded_dir);
    CHECK(decoded_dir->flags == InodeRecord::k_opaque);
    CHECK_FALSE(decoded_dir->object.has_value());
    CHECK(decoded_dir->is_dir());

    InodeRecord file = sample_file();
    file.flags = InodeRecord::k_opaque | 0x40;
    auto decoded_file = InodeRecord::decode(file.encode());
    REQUIRE(decoded_file);
    CHECK(decoded_file->flags == (InodeRecord::k_opaque | 0x40u));
    CHECK(decoded_file->object == file.object);

    InodeRecord dev;
    dev.mode = S_IFCHR | 0600;
    dev.rdev = 0x0123'4567'89ab'cdef;
    auto decoded_dev = InodeRecord::decode(dev.encode());
    REQUIRE(decoded_dev);
    CHECK(decoded_dev->rdev == 0x0123'4567'89ab'cdefu);
}

TEST_CASE("InodeRecord: every truncation of a record is an Error, not a shorter record",
          "[store][schema]") {
    for (bool with_object : {false, true}) {
        InodeRecord r = sample_file();
        if (!with_object) {
            r.object.reset();
        }
        std::string bytes = r.encode();
        for (std::size_t n = 0; n < bytes.size(); ++n) {
            INFO("object " << with_object << ", " << n << " of " << bytes.size() << " bytes");
            auto decoded = InodeRecord::decode(std::string_view(bytes).substr(0, n));
            REQUIRE_FALSE(decoded);
            CHECK(decoded.error().code == EIO);
            CHECK_THAT(decoded.error().message, Catch::Contains("corrupt inode record"));
        }
    }
}

TEST_CASE("DirentValue: entries and whiteouts round-trip", "[store][schema]") {
    DirentValue file{0x1'0000'0001, DT_REG};
    auto decoded = DirentValue::decode(file.encode());
    REQUIRE(decoded);
    CHECK(decoded->ino == 0x1'0000'0001u);
    CHECK(decoded->type == DT_REG);
    CHECK_FALSE(decoded->is_whiteout());

    auto whiteout = DirentValue::decode(DirentValue{0, DT_WHT}.encode());
    REQUIRE(whiteout);
    CHECK(whiteout->is_whiteout());
    CHECK(whiteout->ino == 0);
}

TEST_CASE("DirentValue: a value too short or too long is an Error", "[store][schema]") {
    std::string bytes = DirentValue{7, DT_DIR}.encode();
    CHECK_FALSE(DirentValue::decode(bytes.substr(0, bytes.size() - 1)));
    CHECK_FALSE(DirentValue::decode(bytes + "x"));
    CHECK_FALSE(DirentValue::decode(""));
}

TEST_CASE("LowerStamp: round-trips and refuses truncation", "[store][schema]") {
    LowerStamp stamp{ObjectId::of(std::string_view("lower")), 12345, 1'600'000'000'000'000'007};
    std::string bytes = stamp.encode();
    auto decoded = LowerStamp::decode(bytes);
    REQUIRE(decoded);
    CHECK(decoded->content == stamp.content);
    CHECK(decoded->size == 12345u);
    CHECK(decoded->shown_mtime == 1'600'000'000'000'000'007);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        INFO(n << " bytes");
        CHECK_FALSE(LowerStamp::decode(bytes.substr(0, n)));
    }
}

TEST_CASE("VolumeRecord: round-trips and refuses truncation", "[store][schema]") {
    VolumeRecord volume{0xabcd'0102, 0x1'0000'0400};
    std::string bytes = volume.encode();
    auto decoded = VolumeRecord::decode(bytes);
    REQUIRE(decoded);
    CHECK(decoded->id == 0xabcd'0102u);
    CHECK(decoded->next_inode == 0x1'0000'0400u);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        INFO(n << " bytes");
        CHECK_FALSE(VolumeRecord::decode(bytes.substr(0, n)));
    }
    CHECK(VolumeRecord{}.next_inode == fbfs::k_root_inode + 1);
}

TEST_CASE("encode_u64: round-trips and refuses the wrong length", "[store][schema]") {
    for (std::uint64_t v :
         {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{0x8000'0000'0000'0001}}) {
        CHECK(fbfs::decode_u64(fbfs::encode_u64(v)) == v);
    }
    CHECK_FALSE(fbfs::decode_u64("1234567").has_value());
    CHECK_FALSE(fbfs::decode_u64("123456789").has_value());
}

TEST_CASE("inode_key: keys order by volume, then numerically by inode", "[store][schema]") {
    // Byte order is what LMDB sorts by; std::string compares bytes as unsigned char.
    CHECK(fbfs::inode_key(1, 2) < fbfs::inode_key(1, 256));
    CHECK(fbfs::inode_key(1, 255) < fbfs::inode_key(1, 256));
    CHECK(fbfs::inode_key(1, 0xff'ffff'ffff) < fbfs::inode_key(1, 0x100'0000'0000));
    CHECK(fbfs::inode_key(1, UINT64_MAX) < fbfs::inode_key(2, 1));
    CHECK(fbfs::inode_key(255, 1) < fbfs::inode_key(256, 1));

    std::vector<fbfs::InodeNumber> numbers{70000, 1, 256, 2, 65536, 255, 3};
    std::vector<std::string> keys;
    for (auto n : numbers) {
        keys.push_back(fbfs::inode_key(9, n));
    }
    std::sort(keys.begin(), keys.end());
    std::vector<fbfs::InodeNumber> back;
    for (const auto& key : keys) {
        auto ino = fbfs::inode_of_key(key);
        REQUIRE(ino.has_value());
        back.push_back(*ino);
    }
    CHECK(back == std::vector<fbfs::InodeNumber>{1, 2, 3, 255, 256, 65536, 70000});
}

TEST_CASE("inode_of_key: parses inode keys and refuses other lengths", "[store][schema]") {
    CHECK(fbfs::inode_of_key(fbfs::inode_key(3, 0x0102'0304'0506'0708)) == 0x0102'0304'0506'0708u);
    CHECK_FALSE(fbfs::inode_of_key(fbfs::dirent_key(3, 1, "name")).has_value());
    CHECK_FALSE(fbfs::inode_of_key("short").has_value());
}

TEST_CASE("dirent_key: a directory's entries share its prefix and no other directory's",
          "[store][schema]") {
    auto prefix = fbfs::dirent_prefix(4, 256);
    CHECK(fbfs::dirent_key(4, 256, "a").starts_with(prefix));
    CHECK(fbfs::dirent_key(4, 256, "").starts_with(prefix));
    CHECK_FALSE(fbfs::dirent_key(4, 1, "a").starts_with(prefix));
    CHECK_FALSE(fbfs::dirent_key(5, 256, "a").starts_with(prefix));
    CHECK(fbfs::dirent_key(4, 256, "a") < fbfs::dirent_key(4, 256, "b"));
    CHECK(fbfs::dirent_key(4, 256, "zzz") < fbfs::dirent_key(4, 257, "a"));
    CHECK(fbfs::dirent_key(4, 256, "x").ends_with("x"));
    CHECK(fbfs::stamp_key(4, "src/a.c").starts_with(fbfs::volume_prefix(4)));
    CHECK_FALSE(fbfs::stamp_key(4, "src/a.c").starts_with(fbfs::volume_prefix(5)));
}

TEST_CASE("to_timespec: converts nanoseconds both ways, before the epoch too", "[store][schema]") {
    for (fbfs::TimeNs ns : {fbfs::TimeNs{0}, fbfs::TimeNs{1'700'000'000'123'456'789},
                            fbfs::TimeNs{-1}, fbfs::TimeNs{-1'500'000'000}}) {
        auto ts = fbfs::to_timespec(ns);
        CHECK(ts.tv_nsec >= 0);
        CHECK(ts.tv_nsec < 1'000'000'000);
        CHECK(fbfs::to_ns(ts) == ns);
    }
    CHECK(fbfs::to_timespec(-1).tv_sec == -1);
}

TEST_CASE("check_volume_name: accepts plain names", "[store][schema]") {
    for (const char* name : {"default", "ws-1.x", "A_b-9", "x"}) {
        INFO(name);
        CHECK(fbfs::check_volume_name(name));
    }
    CHECK(fbfs::check_volume_name(std::string(128, 'n')));
}

TEST_CASE("check_volume_name: refuses names that are not safe file names", "[store][schema]") {
    for (std::string name : {std::string(), std::string("."), std::string(".."), std::string("a/b"),
                             std::string(".hidden"), std::string(129, 'n'), std::string("a b"),
                             std::string("a\0b", 3), std::string("caf\xc3\xa9")}) {
        INFO("'" << name << "'");
        auto ok = fbfs::check_volume_name(name);
        REQUIRE_FALSE(ok);
        CHECK(ok.error().code == EINVAL);
        CHECK_THAT(ok.error().message, Catch::Contains("invalid volume name"));
    }
}
