// Packs at the library level: pack_store / write_pack and unpack, as CI relies on them. A round
// trip gives back exactly the volumes that were packed, objects once each; and any pack that is
// damaged, hostile or from a newer fbfs is refused with one clear line and leaves the store
// exactly as it was (files, volumes, reference counts, no temp files).
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "store/base/byte_codec.h"
#include "store/base/object_id.h"
#include "store/base/unique_fd.h"
#include "store/meta/lmdb.h"
#include "store/meta/schema.h"
#include "store/meta/snapshot_tables.h"
#include "store/meta/store.h"
#include "store/meta/volume_lock.h"
#include "store/meta/volume_snapshot.h"
#include "store/meta/volume_tree.h"
#include "store/pack/pack_format.h"
#include "store/pack/pack_reader.h"
#include "store/pack/pack_writer.h"
#include "store/pack/unpack.h"
#include "tests/support/must.h"
#include "tests/support/posix.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tree.h"

namespace fs = std::filesystem;
namespace pack = fbfs::pack;
using fbfs::Error;
using fbfs::InodeNumber;
using fbfs::InodeRecord;
using fbfs::k_root_inode;
using fbfs::LmdbTxn;
using fbfs::LowerStamp;
using fbfs::ObjectId;
using fbfs::PackOptions;
using fbfs::Result;
using fbfs::SnapshotEntry;
using fbfs::SnapshotStamp;
using fbfs::Store;
using fbfs::TimeNs;
using fbfs::UniqueFd;
using fbfs::UnpackSummary;
using fbfs::VolumeLock;
using fbfs::VolumeSnapshot;
using fbfs::VolumeTree;
using fbfs::test::TempDir;

using fbfs::test::must;

namespace {

constexpr TimeNs k_time = 1'700'000'000'123'456'789;

// As root, unpack keeps the owners a pack records; anyone else becomes the owner. Volumes built
// with these owners therefore round-trip exactly either way.
std::uint32_t owner_uid() {
    return ::geteuid() == 0 ? 1234 : ::geteuid();
}
std::uint32_t owner_gid() {
    return ::geteuid() == 0 ? 5678 : ::getegid();
}

std::unique_ptr<Store> open_store(const fs::path& root) {
    return must(Store::open(root, Store::Mode::create_if_missing));
}

// ---- files and pipes holding pack bytes ---------------------------------------------------------

UniqueFd memfd_with(std::string_view bytes) {
    UniqueFd fd(::memfd_create("fbfs-pack-test", MFD_CLOEXEC));
    REQUIRE(fd);
    fbfs::test::write_all(fd.get(), bytes);
    REQUIRE(::lseek(fd.get(), 0, SEEK_SET) == 0);
    return fd;
}

// Unpacks `bytes` from a regular file (the reader knows its length).
Result<UnpackSummary> unpack_file(Store& store, std::string_view bytes) {
    auto fd = memfd_with(bytes);
    return fbfs::unpack(store, fd.get(), {});
}

// Unpacks `bytes` from a pipe (the reader cannot know its length, as with `fbfs unpack -`). The
// bytes are all in the pipe before reading starts, so nothing blocks and nothing gets SIGPIPE.
Result<UnpackSummary> unpack_pipe(Store& store, std::string_view bytes) {
    int ends[2];
    REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
    UniqueFd read_end(ends[0]);
    UniqueFd write_end(ends[1]);
    ::fcntl(write_end.get(), F_SETPIPE_SZ, 1 << 20);
    int capacity = ::fcntl(write_end.get(), F_GETPIPE_SZ);
    REQUIRE(capacity > 0);
    REQUIRE(bytes.size() <= static_cast<std::size_t>(capacity));
    fbfs::test::write_all(write_end.get(), bytes);
    write_end.reset();
    return fbfs::unpack(store, read_end.get(), {});
}

// The pack of volumes `names` of `store` (all if empty).
std::string pack_of(Store& store, const std::vector<std::string>& names = {},
                    const PackOptions& options = {}) {
    UniqueFd fd(::memfd_create("fbfs-pack-test", MFD_CLOEXEC));
    REQUIRE(fd);
    auto summary = must(fbfs::pack_store(store, names, fd.get(), options, {}));
    std::string bytes = fbfs::test::pread_all(fd.get());
    CHECK(summary.packed_bytes == bytes.size());
    return bytes;
}

// A pack of hand-made snapshots, objects served from `objects` (write_pack checks no snapshot).
std::string pack_snapshots(const std::vector<VolumeSnapshot>& volumes,
                           const std::map<ObjectId, std::string>& objects,
                           const PackOptions& options = {}) {
    UniqueFd fd(::memfd_create("fbfs-pack-test", MFD_CLOEXEC));
    REQUIRE(fd);
    auto open = [&](const ObjectId& id) -> Result<UniqueFd> {
        auto found = objects.find(id);
        if (found == objects.end()) {
            return fbfs::make_error(ENOENT, "the test has no object " + id.hex());
        }
        return memfd_with(found->second);
    };
    must(fbfs::write_pack(fd.get(), volumes, open, options, {}));
    return fbfs::test::pread_all(fd.get());
}

// ---- what a store holds -------------------------------------------------------------------------

std::string describe(const InodeRecord& r) {
    return fmt::format(
        "mode={:o} uid={} gid={} nlink={} size={} rdev={} atime={} mtime={} "
        "ctime={} flags={} object={} target={}",
        r.mode, r.uid, r.gid, r.nlink, r.size, r.rdev, r.atime, r.mtime, r.ctime, r.flags,
        r.object ? r.object->hex() : "-", r.symlink_target);
}

// One line per part of a volume, so two volumes compare line by line.
std::vector<std::string> describe(const VolumeSnapshot& v) {
    std::vector<std::string> out{fmt::format("volume {} next_inode={}", v.name, v.next_inode)};
    for (const auto& [ino, record] : v.inodes) {
        out.push_back(fmt::format("inode {} {}", ino, describe(record)));
    }
    for (const auto& e : v.entries) {
        out.push_back(
            fmt::format("entry {}/{} -> {} type {}", e.parent, e.name, e.value.ino, e.value.type));
    }
    for (const auto& s : v.stamps) {
        out.push_back(fmt::format("stamp {} {} {} {}", s.path, s.stamp.content.hex(), s.stamp.size,
                                  s.stamp.shown_mtime));
    }
    for (const auto& x : v.xattrs) {
        out.push_back(fmt::format("xattr {} {} = {}", x.ino, x.xattr.name,
                                  ObjectId::of(x.xattr.value).hex()));
    }
    return out;
}

VolumeSnapshot snapshot_of(Store& store, const std::string& name) {
    std::optional<VolumeSnapshot> out;
    must(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        auto snapshot = fbfs::read_snapshot(txn, store.tables(), name);
        if (!snapshot) {
            return std::unexpected(snapshot.error());
        }
        out = std::move(*snapshot);
        return {};
    }));
    return std::move(*out);
}

std::map<std::string, std::vector<std::string>> volumes_of(Store& store) {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& info : must(store.volumes())) {
        out[info.name] = describe(snapshot_of(store, info.name));
    }
    return out;
}

// The `refs` counts and the `dead` list, read straight from the tables.
std::map<std::string, std::string> refs_of(Store& store) {
    std::map<std::string, std::string> out;
    must(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        auto walked =
            fbfs::for_each_prefix(txn, store.tables().refs, "", [&](auto key, auto value) {
                auto id = ObjectId::from_raw(key);
                auto count = fbfs::decode_u64(value);
                out[id ? id->hex() : "bad key"] = count ? std::to_string(*count) : "bad count";
                return true;
            });
        if (!walked) {
            return walked;
        }
        return fbfs::for_each_prefix(txn, store.tables().dead, "", [&](auto key, auto) {
            auto id = ObjectId::from_raw(key);
            out["dead " + (id ? id->hex() : std::string("bad key"))] = "";
            return true;
        });
    }));
    return out;
}

// Every file under `dir` with its type and size (and SHA-256 of its bytes outside meta/, whose
// LMDB files are covered by the volumes and refs instead).
std::map<std::string, std::string> files_of(const fs::path& dir) {
    std::map<std::string, std::string> out;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        std::string relative = entry.path().lexically_relative(dir).string();
        struct stat st = fbfs::test::lstat_of(entry.path());
        std::string line = fbfs::test::file_type(st.st_mode);
        if (S_ISREG(st.st_mode)) {
            line += " size=" + std::to_string(st.st_size);
            if (relative.find("meta/") == std::string::npos) {
                line += " sha256=" + ObjectId::of(fbfs::test::read_path(entry.path())).hex();
            }
        }
        out[relative] = line;
    }
    return out;
}

// Everything a failed unpack must leave as it was.
struct StoreState {
    std::map<std::string, std::string> files;  // under the store's parent: nothing escapes
    std::map<std::string, std::vector<std::string>> volumes;
    std::map<std::string, std::string> refs;
    bool operator==(const StoreState&) const = default;
};

StoreState state_of(Store& store) {
    return {files_of(store.root().parent_path()), volumes_of(store), refs_of(store)};
}

template <class Map>
std::string differences(const Map& before, const Map& after) {
    std::string out;
    std::set<std::string> keys;
    for (const auto& [key, value] : before) {
        keys.insert(key);
    }
    for (const auto& [key, value] : after) {
        keys.insert(key);
    }
    for (const auto& key : keys) {
        auto b = before.find(key);
        auto a = after.find(key);
        if (b == before.end() || a == after.end() || !(b->second == a->second)) {
            out += "  " + key +
                   (b == before.end()  ? " appeared"
                    : a == after.end() ? " vanished"
                                       : " changed") +
                   "\n";
        }
    }
    return out;
}

std::string differences(const StoreState& before, const StoreState& after) {
    return differences(before.files, after.files) + differences(before.volumes, after.volumes) +
           differences(before.refs, after.refs);
}

void check_unchanged(const StoreState& before, const StoreState& after) {
    INFO("store changed:\n" << differences(before, after));
    CHECK(after == before);
}

std::vector<std::string> unpack_temps(const Store& store) {
    std::vector<std::string> out;
    for (const auto& entry : fs::directory_iterator(store.pool().tmp_dir())) {
        out.push_back(entry.path().filename().string());
    }
    return out;
}

// For the loops over every byte: records in `failures`, prefixed by `where`, how the unpack that
// gave `result` was not a clean refusal — it succeeded, its message is not `named` or is more
// than one line, or the store is not as `before`.
void note_unclean_refusal(const Result<UnpackSummary>& result, const std::string& where,
                          bool (*named)(const std::string& message, std::size_t at), std::size_t at,
                          Store& store, const StoreState& before,
                          std::vector<std::string>& failures) {
    if (result) {
        failures.push_back(where + "accepted");
        return;
    }
    const auto& message = result.error().message;
    if (!named(message, at) || message.find('\n') != std::string::npos) {
        failures.push_back(where + message);
    }
    if (!unpack_temps(store).empty() || state_of(store) != before) {
        failures.push_back(where + "the store changed:\n" + differences(before, state_of(store)));
    }
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& line : lines) {
        out += line + "\n";
    }
    return out;
}

// Checks that `e` is one line a person can act on, holding every one of `parts`.
void check_message(const Error& e, std::initializer_list<std::string_view> parts) {
    INFO("message: " << e.message);
    CHECK_FALSE(e.message.empty());
    CHECK(e.message.find('\n') == std::string::npos);
    CHECK(e.message.find('\0') == std::string::npos);
    // Nothing from the pack reaches a terminal as a control byte (an escape sequence).
    CHECK(std::none_of(e.message.begin(), e.message.end(),
                       [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }));
    for (auto part : parts) {
        CHECK_THAT(e.message, Catch::Contains(std::string(part), Catch::CaseSensitive::No));
    }
}

// Every object each volume names is in the pool and intact; the `refs` table counts exactly the
// inodes naming each object; the pool holds no object nothing names.
void check_pool_consistent(Store& store) {
    std::map<std::string, std::uint64_t> named;
    for (const auto& info : must(store.volumes())) {
        for (const auto& [ino, record] : snapshot_of(store, info.name).inodes) {
            if (record.object) {
                INFO("volume " << info.name << " inode " << ino);
                CHECK(store.pool().contains(*record.object));
                CHECK(must(store.pool().verify(*record.object)));
                ++named[record.object->hex()];
            }
        }
    }
    std::map<std::string, std::string> expected;
    for (const auto& [hex, count] : named) {
        expected[hex] = std::to_string(count);
    }
    CHECK(refs_of(store) == expected);
    std::set<std::string> in_pool;
    must(store.pool().for_each(
        [&](const ObjectId& id, std::uint64_t) { in_pool.insert(id.hex()); }));
    std::set<std::string> wanted;
    for (const auto& [hex, count] : named) {
        wanted.insert(hex);
    }
    CHECK(in_pool == wanted);
}

// ---- a volume with one of everything ------------------------------------------------------------

std::string data_bin(const std::string& flavor) {
    return fbfs::test::random_bytes(std::hash<std::string>{}(flavor), 700);
}

std::string main_c(std::string_view flavor) {
    std::string text;
    for (int i = 0; i < 40; ++i) {
        text += fmt::format("int f{}(void) {{ return {}; }} /* {} */\n", i, i * 7, flavor);
    }
    return text;
}

// Builds volume `name` of `store`: directories (one opaque), regular files with content, an empty
// file, an executable, two inodes with the same content, a hard link across directories, a
// symlink, a fifo, a socket, a whiteout, extended attributes (user. and trusted. ones on files,
// on a hard-linked file and on directories, the root's included), lower stamps and nanosecond
// times. `flavor` changes
// every file's bytes, so volumes of different flavors share no object.
void build_volume(Store& store, const std::string& name, const std::string& flavor) {
    auto tree = must(VolumeTree::open(store, name, owner_uid(), owner_gid()));
    auto put = [&](std::string_view content) { return must(store.pool().put_bytes(content)).id; };
    std::vector<InodeNumber> inodes{k_root_inode};
    auto make = [&](InodeNumber parent, std::string_view entry, std::uint32_t mode,
                    std::optional<std::string> content = std::nullopt, std::uint32_t flags = 0,
                    std::string target = {}) {
        InodeRecord r;
        r.mode = mode;
        r.uid = owner_uid();
        r.gid = owner_gid();
        r.flags = flags;
        if (content && !content->empty()) {
            r.object = put(*content);
            r.size = content->size();
        }
        if (!target.empty()) {
            r.size = target.size();
            r.symlink_target = std::move(target);
        }
        auto ino = must(tree.create(parent, entry, r)).ino;
        inodes.push_back(ino);
        return ino;
    };
    auto src = make(k_root_inode, "src", S_IFDIR | 0750);
    auto main_ino = make(src, "main.c", S_IFREG | 0644, main_c(flavor));
    make(src, "empty", S_IFREG | 0600, std::string());
    make(src, "data.bin", S_IFREG | 0640, data_bin(flavor));
    make(k_root_inode, "copy.c", S_IFREG | 0444, main_c(flavor));
    make(k_root_inode, "run.sh", S_IFREG | 0755, "#!/bin/sh\necho " + flavor + "\n");
    must(tree.link(main_ino, k_root_inode, "main-hard.c"));
    make(k_root_inode, "link", S_IFLNK | 0777, std::nullopt, 0, "src/main.c");
    make(k_root_inode, "pipe", S_IFIFO | 0644);
    make(src, "sock", S_IFSOCK | 0755);
    auto opaque = make(k_root_inode, "opaque", S_IFDIR | 0755, std::nullopt, InodeRecord::k_opaque);
    make(opaque, "inner.txt", S_IFREG | 0644, "inner " + flavor + "\n");
    make(opaque, "nested", S_IFDIR | 0700);
    must(tree.add_whiteout(k_root_inode, "deleted"));
    must(tree.add_whiteout(src, "old.c"));
    auto set = [&](InodeNumber ino, std::string_view attribute, std::string_view value) {
        must(tree.set_xattr(ino, attribute, value, fbfs::XattrMode::create));
    };
    set(main_ino, "user.origin", "built by " + flavor);
    set(main_ino, "trusted.md5",
        std::string("\0\x01"
                    "binary\xff",
                    9));
    set(src, "user.dir", flavor);
    set(k_root_inode, "trusted.root", "");
    set(opaque, "user.big", std::string(2000, 'b'));
    must(tree.put_stamp("src/main.c", LowerStamp{ObjectId::of("lower " + flavor), 11, k_time + 3}));
    must(tree.put_stamp("README", LowerStamp{ObjectId::of("readme " + flavor), 22, k_time + 5}));
    for (std::size_t i = 0; i < inodes.size(); ++i) {
        auto offset = static_cast<TimeNs>(i);
        must(tree.update(inodes[i], [&](InodeRecord& r) -> Result<void> {
            r.atime = k_time + offset;
            r.mtime = k_time + 1000 + offset;
            r.ctime = k_time + 2000 + offset;
            return {};
        }));
    }
}

// A store in a fresh temp dir holding volume "vol" (flavor "new").
struct Source {
    TempDir tmp;
    std::unique_ptr<Store> store = open_store(tmp / "store");
    Source() { build_volume(*store, "vol", "new"); }
};

// A store that a bad pack must leave alone: volume "vol" with other content than Source's, and
// volume "other".
struct Target {
    TempDir tmp;
    std::unique_ptr<Store> store = open_store(tmp / "store");
    Target() {
        build_volume(*store, "vol", "old");
        build_volume(*store, "other", "other");
    }

    // Unpacks `bytes` from a file and from a pipe, checking that both fail with the same one-line
    // message and that the store (and everything beside it) is exactly as before. Returns the
    // error.
    Error refused(std::string_view bytes) {
        auto before = state_of(*store);
        auto from_file = unpack_file(*store, bytes);
        REQUIRE_FALSE(from_file);
        check_unchanged(before, state_of(*store));
        CHECK(unpack_temps(*store).empty());
        auto from_pipe = unpack_pipe(*store, bytes);
        REQUIRE_FALSE(from_pipe);
        check_unchanged(before, state_of(*store));
        CHECK(unpack_temps(*store).empty());
        // A pipe cannot tell the length up front, so a truncation may be found at another
        // point; everything else must read the same.
        if (from_file.error().message.find("truncated") == std::string::npos) {
            CHECK(from_pipe.error().message == from_file.error().message);
        }
        check_message(from_file.error(), {});
        check_message(from_pipe.error(), {});
        return from_file.error();
    }
};

// ---- taking packs apart -------------------------------------------------------------------------

struct Layout {
    std::uint64_t object_table = 0, metadata = 0, frames = 0, frame_table = 0, footer = 0;
};

// Where each part starts, from the footer (the last 80 bytes: five u64 offsets first).
Layout layout_of(std::string_view bytes) {
    REQUIRE(bytes.size() >= pack::k_header_size + pack::k_footer_size);
    fbfs::ByteReader in(bytes.substr(bytes.size() - pack::k_footer_size));
    Layout l;
    REQUIRE((in.le(l.object_table) && in.le(l.metadata) && in.le(l.frames) &&
             in.le(l.frame_table) && in.le(l.footer)));
    REQUIRE(l.object_table == pack::k_header_size);
    REQUIRE(l.object_table < l.metadata);
    REQUIRE(l.metadata < l.frames);
    REQUIRE(l.frames <= l.frame_table);
    REQUIRE(l.frame_table < l.footer);
    REQUIRE(l.footer == bytes.size() - pack::k_footer_size);
    return l;
}

// The raw bytes of the section of `kind` in bytes[from, to).
std::string section_raw(std::string_view bytes, std::uint64_t from, std::uint64_t to,
                        pack::SectionKind kind) {
    auto part = bytes.substr(from, to - from);
    auto header =
        must(pack::decode_section_header(part.substr(0, pack::k_section_header_size), kind));
    return must(pack::open_section(header, part.substr(0, pack::k_section_header_size),
                                   part.substr(pack::k_section_header_size)));
}

// A pack as values, to change one thing and encode it again with pack_format's own encoders.
struct Parts {
    std::uint32_t version = pack::k_version;
    std::string header = pack::encode_header(pack::k_version);
    std::vector<pack::PackedObject> objects;
    std::vector<VolumeSnapshot> volumes;
    std::string frames;  // as stored
    std::vector<pack::FrameInfo> frame_table;
};

Parts split(std::string_view bytes) {
    Layout l = layout_of(bytes);
    Parts p;
    p.header = std::string(bytes.substr(0, pack::k_header_size));
    p.version = must(pack::check_header(p.header));
    p.objects = must(pack::decode_object_table(
        section_raw(bytes, l.object_table, l.metadata, pack::SectionKind::object_table)));
    p.volumes = must(
        pack::decode_metadata(section_raw(bytes, l.metadata, l.frames, pack::SectionKind::metadata),
                              p.objects, p.version));
    p.frames = std::string(bytes.substr(l.frames, l.frame_table - l.frames));
    p.frame_table = must(pack::decode_frame_table(
        section_raw(bytes, l.frame_table, l.footer, pack::SectionKind::frame_table)));
    return p;
}

// Lays encoded parts out as a pack with a footer that is right for them.
std::string assemble_raw(const std::string& header, const std::string& object_table,
                         const std::string& metadata, const std::string& frames,
                         const std::string& frame_table) {
    pack::Footer f;
    f.object_table_offset = header.size();
    f.metadata_offset = f.object_table_offset + object_table.size();
    f.frames_offset = f.metadata_offset + metadata.size();
    f.frame_table_offset = f.frames_offset + frames.size();
    f.footer_offset = f.frame_table_offset + frame_table.size();
    return header + object_table + metadata + frames + frame_table + pack::encode_footer(f);
}

std::string object_table_section(const std::string& raw) {
    return must(pack::encode_section(pack::SectionKind::object_table, raw, 3));
}
std::string metadata_section(const std::string& raw) {
    return must(pack::encode_section(pack::SectionKind::metadata, raw, 3));
}
std::string frame_table_section(const std::string& raw) {
    return must(pack::encode_section(pack::SectionKind::frame_table, raw, 3));
}

std::string assemble(const Parts& p) {
    return assemble_raw(p.header, object_table_section(pack::encode_object_table(p.objects)),
                        metadata_section(pack::encode_metadata(p.volumes, p.objects, p.version)),
                        p.frames, frame_table_section(pack::encode_frame_table(p.frame_table)));
}

std::string header_with(std::uint32_t version, std::uint32_t flags) {
    std::string head = fbfs::ByteWriter().bytes(pack::k_magic).le(version).le(flags).take();
    fbfs::Sha256 sha;
    sha.update(head.data(), head.size());
    return head + std::string(sha.finish().raw());
}

std::string flipped(std::string bytes, std::uint64_t at, unsigned char mask = 0xff) {
    bytes[at] = static_cast<char>(static_cast<unsigned char>(bytes[at]) ^ mask);
    return bytes;
}

std::string with_u64(std::string bytes, std::uint64_t at, std::uint64_t value) {
    std::string le = fbfs::ByteWriter().le(value).take();
    bytes.replace(at, 8, le);
    return bytes;
}

// ---- hand-made volumes for hostile metadata -----------------------------------------------------

InodeRecord record(std::uint32_t mode, std::uint32_t nlink) {
    InodeRecord r;
    r.mode = mode;
    r.uid = owner_uid();
    r.gid = owner_gid();
    r.nlink = nlink;
    r.atime = k_time;
    r.mtime = k_time + 1;
    r.ctime = k_time + 2;
    return r;
}

const std::string k_file_bytes = "the file's bytes\n";

// A consistent volume: root, "file" (an object) and "dir". Cases change one thing in it.
VolumeSnapshot base_volume(const std::string& name = "vol") {
    VolumeSnapshot v;
    v.name = name;
    v.next_inode = 100;
    v.inodes[k_root_inode] = record(S_IFDIR | 0755, 3);
    InodeRecord file = record(S_IFREG | 0644, 1);
    file.object = ObjectId::of(k_file_bytes);
    file.size = k_file_bytes.size();
    v.inodes[2] = file;
    v.inodes[3] = record(S_IFDIR | 0755, 2);
    v.entries.push_back({k_root_inode, "dir", {3, DT_DIR}});
    v.entries.push_back({k_root_inode, "file", {2, DT_REG}});
    return v;
}

const std::map<ObjectId, std::string>& base_objects() {
    static const std::map<ObjectId, std::string> objects{
        {ObjectId::of(k_file_bytes), k_file_bytes}};
    return objects;
}

// Adds an empty regular file `ino` named `name` in the root.
void add_empty_file(VolumeSnapshot& v, InodeNumber ino, const std::string& name) {
    v.inodes[ino] = record(S_IFREG | 0644, 1);
    v.entries.push_back({k_root_inode, name, {ino, DT_REG}});
    std::sort(v.entries.begin(), v.entries.end(), [](const auto& a, const auto& b) {
        return std::tie(a.parent, a.name) < std::tie(b.parent, b.name);
    });
}

}  // namespace

// ---- round trips --------------------------------------------------------------------------------

TEST_CASE("pack: a store's volume comes back exactly from a pack into a new store",
          "[store][pack]") {
    Source source;
    auto bytes = pack_of(*source.store);
    REQUIRE(bytes.starts_with("FBFSPACK"));

    TempDir dest_dir;
    auto dest = open_store(dest_dir / "store");
    auto summary = must(unpack_file(*dest, bytes));

    auto packed = snapshot_of(*source.store, "vol");
    auto unpacked = snapshot_of(*dest, "vol");
    auto expected = describe(packed);
    auto actual = describe(unpacked);
    CHECK(actual == expected);
    CHECK(unpacked.next_inode == packed.next_inode);
    CHECK(unpacked.inodes == packed.inodes);
    CHECK(unpacked.entries.size() == packed.entries.size());
    CHECK(unpacked.stamps.size() == 2);
    CHECK(unpacked.xattrs.size() == 5);
    CHECK(unpacked.xattrs == packed.xattrs);

    // The parts that matter, spelled out, so a describe() that missed a field cannot hide them.
    bool saw_opaque = false, saw_fifo = false, saw_symlink = false, saw_nanos = false;
    std::size_t whiteouts = 0;
    for (const auto& [ino, r] : unpacked.inodes) {
        saw_opaque |= r.is_dir() && r.flags == InodeRecord::k_opaque;
        saw_fifo |= S_ISFIFO(r.mode);
        saw_symlink |= r.is_symlink() && r.symlink_target == "src/main.c";
        saw_nanos |= r.mtime % 1'000'000'000 == (k_time + 1000) % 1'000'000'000;
    }
    for (const auto& e : unpacked.entries) {
        whiteouts += e.value.is_whiteout() && e.value.ino == 0;
    }
    CHECK(saw_opaque);
    CHECK(saw_fifo);
    CHECK(saw_symlink);
    CHECK(saw_nanos);
    CHECK(whiteouts == 2);

    check_pool_consistent(*dest);
    CHECK(volumes_of(*dest) == volumes_of(*source.store));
    CHECK(unpack_temps(*dest).empty());

    // main.c, copy.c (same bytes), data.bin, run.sh, inner.txt: four distinct objects.
    CHECK(summary.volumes == 1);
    CHECK(summary.objects == 4);
    CHECK(summary.objects_added == 4);
    CHECK(summary.packed_bytes == bytes.size());
    CHECK(summary.logical_bytes == fbfs::logical_bytes(packed));
    CHECK(summary.object_bytes < summary.logical_bytes);
}

TEST_CASE("pack: objects split over many small frames and read from a pipe come back",
          "[store][pack]") {
    Source source;
    build_volume(*source.store, "second", "second");
    PackOptions options;
    options.frame_size = 97;  // objects start and end inside frames
    options.threads = 1;
    options.level = 19;
    auto bytes = pack_of(*source.store, {}, options);
    auto layout = layout_of(bytes);
    auto frames = must(pack::decode_frame_table(
        section_raw(bytes, layout.frame_table, layout.footer, pack::SectionKind::frame_table)));
    CHECK(frames.size() > 10);

    TempDir dest_dir;
    auto dest = open_store(dest_dir / "store");
    auto summary = must(unpack_pipe(*dest, bytes));
    CHECK(summary.volumes == 2);
    CHECK(summary.packed_bytes == bytes.size());
    CHECK(volumes_of(*dest) == volumes_of(*source.store));
    check_pool_consistent(*dest);
}

TEST_CASE("pack: runs of zeros, whole frames of them included, come back and unpack as holes",
          "[store][pack]") {
    // 6 MiB that is mostly zeros (a sparse file's holes read as zeros), then 2 MiB of zeros: runs
    // that start and end inside frames, fill whole frames, and end the stream.
    constexpr std::size_t k_mib = std::size_t{1} << 20;
    const std::string sparse = [] {
        std::string bytes(6 * k_mib, '\0');
        bytes.replace(0, k_mib, fbfs::test::random_bytes(1, k_mib));
        bytes.replace(4 * k_mib + 777, 100000, fbfs::test::random_bytes(2, 100000));
        return bytes;
    }();
    const std::string zeros(2 * k_mib, '\0');
    TempDir tmp;
    auto store = open_store(tmp / "store");
    {
        auto tree = must(VolumeTree::open(*store, "vol", owner_uid(), owner_gid()));
        for (auto [name, content] : {std::pair{"sparse", &sparse}, std::pair{"zeros", &zeros}}) {
            InodeRecord r = record(S_IFREG | 0644, 1);
            r.object = must(store->pool().put_bytes(*content)).id;
            r.size = content->size();
            must(tree.create(k_root_inode, name, r));
        }
    }
    PackOptions options;
    options.frame_size = 256 * 1024 + 3;
    auto bytes = pack_of(*store, {}, options);
    CHECK(bytes.size() < 2 * k_mib);  // the data and little else

    TempDir dest_dir;
    auto dest = open_store(dest_dir / "store");
    must(unpack_file(*dest, bytes));
    CHECK(volumes_of(*dest) == volumes_of(*store));
    check_pool_consistent(*dest);
    for (const std::string* content : {&sparse, &zeros}) {
        auto object = dest->pool().object_path(ObjectId::of(*content));
        CHECK(fbfs::test::read_path(object) == *content);
        struct stat st {};
        REQUIRE(::stat(object.c_str(), &st) == 0);
        CHECK(static_cast<std::size_t>(st.st_blocks) * 512 < content->size() / 2);
    }
}

TEST_CASE("pack: pack_store packs only the volumes named and refuses a volume it lacks",
          "[store][pack]") {
    Source source;
    build_volume(*source.store, "second", "second");
    auto bytes = pack_of(*source.store, {"second"});
    TempDir dest_dir;
    auto dest = open_store(dest_dir / "store");
    must(unpack_file(*dest, bytes));
    auto volumes = volumes_of(*dest);
    REQUIRE(volumes.size() == 1);
    CHECK(volumes.begin()->first == "second");
    CHECK(volumes["second"] == describe(snapshot_of(*source.store, "second")));
    check_pool_consistent(*dest);

    UniqueFd fd(::memfd_create("fbfs-pack-test", MFD_CLOEXEC));
    auto missing = fbfs::pack_store(*source.store, {"nope"}, fd.get(), {}, {});
    REQUIRE_FALSE(missing);
    check_message(missing.error(), {"no volume 'nope'", "vol"});
    CHECK(fbfs::test::pread_all(fd.get()).empty());
}

TEST_CASE("pack: pack_store refuses a volume that a mount is serving", "[store][pack]") {
    Source source;
    auto lock = must(VolumeLock::acquire(source.store->root(), "vol"));
    UniqueFd fd(::memfd_create("fbfs-pack-test", MFD_CLOEXEC));
    auto packed = fbfs::pack_store(*source.store, {}, fd.get(), {}, {});
    REQUIRE_FALSE(packed);
    check_message(packed.error(), {"vol", "mounted", "umount"});
    CHECK(fbfs::test::pread_all(fd.get()).empty());
}

TEST_CASE("pack: write_pack refuses a store object whose bytes do not match its id",
          "[store][pack]") {
    auto v = base_volume();
    std::map<ObjectId, std::string> objects{{ObjectId::of(k_file_bytes), "THE FILE'S BYTES\n"}};
    UniqueFd fd(::memfd_create("fbfs-pack-test", MFD_CLOEXEC));
    auto open = [&](const ObjectId& id) { return Result<UniqueFd>(memfd_with(objects.at(id))); };
    auto packed = fbfs::write_pack(fd.get(), {v}, open, {}, {});
    REQUIRE_FALSE(packed);
    check_message(packed.error(), {ObjectId::of(k_file_bytes).hex(), "does not match", "verify"});
}

TEST_CASE("pack: unpacking skips objects the store has and replaces the volume's old content",
          "[store][pack]") {
    Source source;
    auto bytes = pack_of(*source.store);
    auto packed = snapshot_of(*source.store, "vol");

    TempDir dest_dir;
    auto dest = open_store(dest_dir / "store");
    build_volume(*dest, "vol", "old");  // same names, other bytes: every object differs
    auto old = snapshot_of(*dest, "vol");
    // One object of the pack is already in the pool, named by nothing; one more is named by a
    // file of the old volume that the pack replaces.
    REQUIRE(dest->pool().put_bytes(data_bin("new")));
    auto shared = main_c("new");
    {
        auto tree = must(VolumeTree::open(*dest, "vol", owner_uid(), owner_gid()));
        InodeRecord r = record(S_IFREG | 0644, 1);
        r.object = must(dest->pool().put_bytes(shared)).id;
        r.size = shared.size();
        must(tree.create(k_root_inode, "shared.c", r));
    }
    std::set<ObjectId> old_objects;
    for (const auto& [ino, r] : old.inodes) {
        if (r.object) {
            old_objects.insert(*r.object);
        }
    }
    REQUIRE(old_objects.size() == 4);

    auto summary = must(unpack_file(*dest, bytes));
    CHECK(summary.objects == 4);
    CHECK(summary.objects_added == 2);  // main.c's and data.bin's bytes were there already
    CHECK(describe(snapshot_of(*dest, "vol")) == describe(packed));
    for (const auto& id : old_objects) {
        INFO("old object " << id.hex());
        CHECK_FALSE(dest->pool().contains(id));  // nothing names it any more: deleted
    }
    check_pool_consistent(*dest);
    CHECK(unpack_temps(*dest).empty());

    // The same pack again: nothing new, nothing changed.
    auto before = state_of(*dest);
    auto again = must(unpack_file(*dest, bytes));
    CHECK(again.objects_added == 0);
    CHECK(state_of(*dest).volumes == before.volumes);
    CHECK(state_of(*dest).refs == before.refs);
    check_pool_consistent(*dest);
}

TEST_CASE("pack: volumes the pack does not hold are left alone", "[store][pack]") {
    Source source;
    auto bytes = pack_of(*source.store);

    TempDir dest_dir;
    auto dest = open_store(dest_dir / "store");
    build_volume(*dest, "other", "other");
    build_volume(*dest, "third", "new");  // shares every object with the pack's volume
    auto other = describe(snapshot_of(*dest, "other"));
    auto third = describe(snapshot_of(*dest, "third"));

    auto summary = must(unpack_file(*dest, bytes));
    CHECK(summary.objects_added == 0);
    auto volumes = volumes_of(*dest);
    CHECK(volumes.size() == 3);
    CHECK(volumes["other"] == other);
    CHECK(volumes["third"] == third);
    CHECK(volumes["vol"] == describe(snapshot_of(*source.store, "vol")));
    check_pool_consistent(*dest);

    // Replacing "vol" with a pack of an empty volume drops its references, not the objects that
    // "third" still names.
    TempDir empty_dir;
    auto empty_store = open_store(empty_dir / "store");
    must(VolumeTree::open(*empty_store, "vol", owner_uid(), owner_gid()));
    must(unpack_file(*dest, pack_of(*empty_store)));
    volumes = volumes_of(*dest);
    CHECK(volumes["other"] == other);
    CHECK(volumes["third"] == third);
    CHECK(snapshot_of(*dest, "vol").inodes.size() == 1);
    check_pool_consistent(*dest);
}

TEST_CASE("pack: unpack keeps owners as root and gives files to the user otherwise",
          "[store][pack]") {
    auto v = base_volume();
    for (auto& [ino, r] : v.inodes) {
        r.uid = 4321;
        r.gid = 8765;
    }
    TempDir dest_dir;
    auto dest = open_store(dest_dir / "store");
    must(unpack_file(*dest, pack_snapshots({v}, base_objects())));
    for (const auto& [ino, r] : snapshot_of(*dest, "vol").inodes) {
        INFO("inode " << ino);
        CHECK(r.uid == (::geteuid() == 0 ? 4321 : ::geteuid()));
        CHECK(r.gid == (::geteuid() == 0 ? 8765 : ::getegid()));
    }
}

TEST_CASE("pack: a section larger than a reader accepts is refused by the writer",
          "[store][pack]") {
    // One byte over the limit, mapped but never touched: the writer must refuse it by its size.
    std::size_t size = pack::k_max_section_raw + 1;
    void* mapped =
        ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(mapped != MAP_FAILED);
    auto section = pack::encode_section(pack::SectionKind::metadata,
                                        std::string_view(static_cast<char*>(mapped), size), 1);
    ::munmap(mapped, size);
    REQUIRE_FALSE(section);
    CHECK(section.error().code == EFBIG);
    CHECK_THAT(section.error().message, Catch::Contains("metadata"));
    CHECK_THAT(section.error().message, Catch::Contains("fewer volumes"));
}

TEST_CASE("pack: a pack taken apart and encoded again with pack_format unpacks", "[store][pack]") {
    // The crafted packs below change one thing in packs made this way; this shows that the rest
    // of what they do is right.
    Source source;
    auto bytes = pack_of(*source.store);
    CHECK(assemble(split(bytes)) == bytes);
    Target target;
    must(unpack_file(*target.store, assemble(split(bytes))));
    CHECK(volumes_of(*target.store)["vol"] == describe(snapshot_of(*source.store, "vol")));

    TempDir dest_dir;
    auto dest = open_store(dest_dir / "store");
    must(unpack_file(*dest, pack_snapshots({base_volume()}, base_objects())));
    CHECK(describe(snapshot_of(*dest, "vol")) == describe(base_volume()));
}

TEST_CASE("pack: a volume being served refuses the unpack and nothing changes", "[store][pack]") {
    Source source;
    Target target;
    auto bytes = pack_of(*source.store);
    {
        auto lock = must(VolumeLock::acquire(target.store->root(), "vol"));
        auto error = target.refused(bytes);
        check_message(error, {"'vol'", "mounted", "umount"});
    }
    // A lock on a volume the pack does not hold is no reason to refuse.
    auto lock = must(VolumeLock::acquire(target.store->root(), "other"));
    auto other = volumes_of(*target.store)["other"];
    must(unpack_file(*target.store, bytes));
    CHECK(volumes_of(*target.store)["other"] == other);
    CHECK(volumes_of(*target.store)["vol"] == describe(snapshot_of(*source.store, "vol")));
}

// ---- damaged packs ------------------------------------------------------------------------------

TEST_CASE("pack: a pack cut short at any byte is refused as truncated and changes nothing",
          "[store][pack]") {
    Source source;
    PackOptions options;
    options.frame_size = 300;
    options.threads = 1;
    auto bytes = pack_of(*source.store, {}, options);
    INFO("pack of " << bytes.size() << " bytes");
    REQUIRE(bytes.size() < 16384);  // small enough to try every length
    Target target;
    auto before = state_of(*target.store);
    std::vector<std::string> failures;
    for (std::size_t length = 0; length < bytes.size(); ++length) {
        auto prefix = std::string_view(bytes).substr(0, length);
        for (bool pipe : {false, true}) {
            auto result =
                pipe ? unpack_pipe(*target.store, prefix) : unpack_file(*target.store, prefix);
            std::string where = fmt::format("{} bytes from a {}: ", length, pipe ? "pipe" : "file");
            note_unclean_refusal(
                result, where,
                [](const std::string& message, std::size_t size) {
                    return message.find("truncated") != std::string::npos ||
                           (size == 0 && message.find("not an fbfs pack") != std::string::npos);
                },
                length, *target.store, before, failures);
        }
        if (failures.size() > 20) {
            break;
        }
    }
    INFO("failures:\n" << joined(failures));
    CHECK(failures.empty());
    check_unchanged(before, state_of(*target.store));
}

TEST_CASE("pack: a pack with any one byte changed is refused and changes nothing",
          "[store][pack]") {
    Source source;
    PackOptions options;
    options.frame_size = 300;
    options.threads = 1;
    auto bytes = pack_of(*source.store, {}, options);
    INFO("pack of " << bytes.size() << " bytes");
    REQUIRE(bytes.size() < 16384);
    Target target;
    auto before = state_of(*target.store);
    std::vector<std::string> failures;
    for (std::size_t at = 0; at < bytes.size(); ++at) {
        // One bit from a file, every bit from a pipe.
        for (bool pipe : {false, true}) {
            unsigned char mask = pipe ? 0xff : 0x01;
            auto changed = flipped(bytes, at, mask);
            auto result =
                pipe ? unpack_pipe(*target.store, changed) : unpack_file(*target.store, changed);
            std::string where =
                fmt::format("byte {} ^ {:#x} from a {}: ", at, mask, pipe ? "pipe" : "file");
            note_unclean_refusal(
                result, where,
                [](const std::string& message, std::size_t offset) {
                    return message.find("damaged") != std::string::npos ||
                           (offset < pack::k_magic.size() &&
                            message.find("not an fbfs pack") != std::string::npos);
                },
                at, *target.store, before, failures);
        }
        if (failures.size() > 20) {
            break;
        }
    }
    INFO("failures:\n" << joined(failures));
    CHECK(failures.empty());
    check_unchanged(before, state_of(*target.store));
}

TEST_CASE("pack: a changed byte in each part is reported as damage to that part", "[store][pack]") {
    Source source;
    auto bytes = pack_of(*source.store);
    auto l = layout_of(bytes);
    Target target;
    std::uint64_t stored = pack::k_section_header_size;

    SECTION("header") {
        check_message(target.refused(flipped(bytes, 9)), {"damaged", "header", "checksum"});
        check_message(target.refused(flipped(bytes, 30)), {"damaged", "header", "checksum"});
    }
    SECTION("object table") {
        check_message(target.refused(flipped(bytes, l.object_table + stored + 3)),
                      {"damaged", "object table", "checksum"});
        check_message(target.refused(flipped(bytes, l.object_table + 2)),  // its kind
                      {"damaged", "object table"});
    }
    SECTION("metadata") {
        check_message(target.refused(flipped(bytes, l.metadata + stored + 5)),
                      {"damaged", "metadata", "checksum"});
        check_message(target.refused(flipped(bytes, l.metadata + 40)),  // its digest
                      {"damaged", "metadata", "checksum"});
    }
    SECTION("frame: the object bytes") {
        auto error = target.refused(flipped(bytes, (l.frames + l.frame_table) / 2));
        check_message(error, {"damaged"});
        bool names_it = error.message.find("frame") != std::string::npos ||
                        error.message.find("object") != std::string::npos;
        CHECK(names_it);
    }
    SECTION("frame table") {
        check_message(target.refused(flipped(bytes, l.frame_table + stored + 1)),
                      {"damaged", "frame table", "checksum"});
    }
    SECTION("footer") {
        check_message(target.refused(flipped(bytes, l.footer + 3)),
                      {"damaged", "footer", "checksum"});
        check_message(target.refused(flipped(bytes, l.footer + 50)),
                      {"damaged", "footer", "checksum"});
        check_message(target.refused(flipped(bytes, bytes.size() - 2)), {"damaged", "FBFSEND"});
    }
}

TEST_CASE("pack: a file that is not a pack is refused as not an fbfs pack", "[store][pack]") {
    Source source;
    auto bytes = pack_of(*source.store);
    Target target;
    auto wrong_magic = bytes;
    wrong_magic.replace(0, 8, "FBFSPACX");
    check_message(target.refused(wrong_magic), {"not an fbfs pack", "FBFSPACK"});
    std::string tar(4096, '\0');
    tar.replace(0, 9, "README.md");
    check_message(target.refused(tar), {"not an fbfs pack"});
    check_message(target.refused(std::string(200, 'x')), {"not an fbfs pack"});
}

TEST_CASE("pack: a short file that is not a pack is called not an fbfs pack rather than truncated",
          "[store][pack]") {
    // A cache step that saved an error page or a few bytes of something else: the reader checks
    // the magic first (docs/FORMAT.md), so this is "not an fbfs pack", not a damaged pack.
    Target target;
    auto error = target.refused("Not Found\n");
    check_message(error, {"not an fbfs pack"});
    CHECK_THAT(error.message, !Catch::Contains("truncated"));
}

TEST_CASE("pack: a pack from a newer fbfs is refused as newer rather than damaged",
          "[store][pack]") {
    Source source;
    auto bytes = pack_of(*source.store);
    Target target;
    auto newer = header_with(pack::k_version + 1, 0) + bytes.substr(pack::k_header_size);
    auto error = target.refused(newer);
    check_message(error, {fmt::format("version {}", pack::k_version + 1), "newer", "newer fbfs"});
    CHECK_THAT(error.message, !Catch::Contains("damaged"));
    CHECK(error.code == EPROTONOSUPPORT);

    // Even with flags this version does not know, and whatever follows the header.
    check_message(target.refused(header_with(7, 0xff) + std::string(500, '?')),
                  {"version 7", "newer"});
    // Version 0 and unknown flags in a known version are damage.
    check_message(target.refused(header_with(0, 0) + bytes.substr(pack::k_header_size)),
                  {"damaged", "version 0"});
    check_message(target.refused(header_with(1, 4) + bytes.substr(pack::k_header_size)),
                  {"damaged", "flags"});
    check_message(
        target.refused(header_with(pack::k_version, 4) + bytes.substr(pack::k_header_size)),
        {"damaged", "flags"});
}

TEST_CASE("pack: sizes and counts that run past the file are refused without reading them",
          "[store][pack]") {
    Source source;
    auto bytes = pack_of(*source.store);
    auto l = layout_of(bytes);
    Target target;

    SECTION("a section claiming a huge stored size") {
        auto error = target.refused(with_u64(bytes, l.metadata + 8, std::uint64_t{1} << 60));
        check_message(error, {"damaged", "metadata"});
    }
    SECTION("a section claiming a huge raw size") {
        auto error = target.refused(with_u64(bytes, l.object_table + 16, std::uint64_t{1} << 40));
        check_message(error, {"damaged", "object table", "bytes"});
    }
    SECTION("a section whose stored size runs past the end of the file") {
        // As large as a section may be, so only the file's end is wrong.
        auto huge = with_u64(bytes, l.frame_table + 16, pack::k_max_section_raw);
        huge = with_u64(huge, l.frame_table + 8, pack::k_max_section_raw);
        check_message(target.refused(huge), {"damaged", "frame table", "truncated"});
    }
    SECTION("an object table counting more entries than it has") {
        auto p = split(bytes);
        auto raw = pack::encode_object_table(p.objects);
        raw.replace(0, 8, fbfs::ByteWriter().le(std::uint64_t{p.objects.size() + 1}).take());
        auto crafted =
            assemble_raw(p.header, object_table_section(raw),
                         metadata_section(pack::encode_metadata(p.volumes, p.objects, p.version)),
                         p.frames, frame_table_section(pack::encode_frame_table(p.frame_table)));
        check_message(target.refused(crafted), {"damaged", "object table", "count"});
        raw.replace(0, 8, fbfs::ByteWriter().le(~std::uint64_t{0}).take());
        crafted =
            assemble_raw(p.header, object_table_section(raw),
                         metadata_section(pack::encode_metadata(p.volumes, p.objects, p.version)),
                         p.frames, frame_table_section(pack::encode_frame_table(p.frame_table)));
        check_message(target.refused(crafted), {"damaged", "object table", "count"});
    }
    SECTION("a frame table counting more frames than it has") {
        auto p = split(bytes);
        auto raw = pack::encode_frame_table(p.frame_table);
        raw.replace(0, 8, fbfs::ByteWriter().le(std::uint64_t{p.frame_table.size() + 1}).take());
        auto crafted =
            assemble_raw(p.header, object_table_section(pack::encode_object_table(p.objects)),
                         metadata_section(pack::encode_metadata(p.volumes, p.objects, p.version)),
                         p.frames, frame_table_section(raw));
        check_message(target.refused(crafted), {"damaged", "frame table", "count"});
    }
    SECTION("a frame table listing a frame that is not there") {
        auto p = split(bytes);
        p.frame_table.push_back(p.frame_table.back());
        check_message(target.refused(assemble(p)), {"damaged", "frame table", "frames"});
    }
    SECTION("an object larger than the frames hold") {
        auto p = split(bytes);
        REQUIRE_FALSE(p.objects.empty());
        auto& last = p.objects.back();
        for (auto& v : p.volumes) {
            for (auto& [ino, r] : v.inodes) {
                if (r.object == last.id) {
                    r.size += 1000;
                }
            }
        }
        last.size += 1000;
        check_message(target.refused(assemble(p)), {"damaged"});
    }
    SECTION("metadata with a volume count larger than its volumes") {
        auto p = split(bytes);
        auto raw = pack::encode_metadata(p.volumes, p.objects, p.version);
        raw.replace(0, 4, fbfs::ByteWriter().le(std::uint32_t{1000}).take());
        auto crafted =
            assemble_raw(p.header, object_table_section(pack::encode_object_table(p.objects)),
                         metadata_section(raw), p.frames,
                         frame_table_section(pack::encode_frame_table(p.frame_table)));
        check_message(target.refused(crafted), {"damaged", "metadata"});
    }
    SECTION("footer offsets that do not match the parts, with a correct checksum") {
        pack::Footer f{l.object_table, l.metadata + 1, l.frames, l.frame_table, l.footer};
        auto crafted = bytes.substr(0, l.footer) + pack::encode_footer(f);
        check_message(target.refused(crafted), {"damaged", "footer", "offsets"});
    }
    SECTION("bytes after the footer") {
        check_message(target.refused(bytes + "x"), {"damaged", "after its footer"});
        check_message(target.refused(bytes + bytes), {"damaged", "after its footer"});
    }
}

TEST_CASE("pack: an object whose bytes do not match its id is refused and changes nothing",
          "[store][pack]") {
    // Two packs alike but for one file's bytes (same size): the object table and metadata of one
    // with the frames (and matching frame table) of the other.
    auto good = base_volume();
    auto evil = base_volume();
    std::string other_bytes = "THE FILE'S BYTES\n";
    REQUIRE(other_bytes.size() == k_file_bytes.size());
    evil.inodes[2].object = ObjectId::of(other_bytes);
    auto a = split(pack_snapshots({good}, base_objects()));
    auto b = split(pack_snapshots({evil}, {{ObjectId::of(other_bytes), other_bytes}}));
    a.frames = b.frames;
    a.frame_table = b.frame_table;
    Target target;
    auto error = target.refused(assemble(a));
    check_message(error, {"damaged", ObjectId::of(k_file_bytes).hex(), "does not match its id"});
    CHECK_FALSE(target.store->pool().contains(ObjectId::of(other_bytes)));
    CHECK_FALSE(target.store->pool().contains(ObjectId::of(k_file_bytes)));

    // The store having the real object does not let the wrong bytes through: every object of a
    // pack is checked, wanted or not.
    REQUIRE(target.store->pool().put_bytes(k_file_bytes));
    error = target.refused(assemble(a));
    check_message(error, {"damaged", ObjectId::of(k_file_bytes).hex(), "does not match its id"});
}

TEST_CASE("pack: a pack of several MiB round-trips and damage near its end changes nothing",
          "[store][pack]") {
    // More object bytes than the reader queues between its threads, in two frames.
    auto v = base_volume();
    std::map<ObjectId, std::string> objects = base_objects();
    for (InodeNumber ino : {4, 5, 6}) {
        auto bytes = fbfs::test::random_bytes(ino, (std::size_t{4} << 20) + ino);
        InodeRecord file = record(S_IFREG | 0644, 1);
        file.object = ObjectId::of(bytes);
        file.size = bytes.size();
        v.inodes[ino] = file;
        v.entries.push_back({3, "big" + std::to_string(ino), {ino, DT_REG}});
        objects[*file.object] = std::move(bytes);
    }
    PackOptions options;
    options.frame_size = std::uint64_t{7} << 20;
    options.level = 1;
    auto bytes = pack_snapshots({v}, objects, options);
    auto l = layout_of(bytes);

    Target target;
    auto before = state_of(*target.store);
    auto damaged = flipped(bytes, l.frame_table - 1000);
    auto failed = unpack_file(*target.store, damaged);
    REQUIRE_FALSE(failed);
    check_message(failed.error(), {"damaged"});
    check_unchanged(before, state_of(*target.store));
    CHECK(unpack_temps(*target.store).empty());

    auto summary = must(unpack_file(*target.store, bytes));
    CHECK(summary.objects == 4);
    CHECK(summary.objects_added == 4);
    CHECK(describe(snapshot_of(*target.store, "vol")) == describe(v));
    check_pool_consistent(*target.store);
}

TEST_CASE("pack: pack and unpack stopped by their progress callback fail and change nothing",
          "[store][pack]") {
    Source source;
    Target target;
    auto bytes = pack_of(*source.store);
    auto before = state_of(*target.store);
    int calls = 0;
    auto stop = [&](const fbfs::Progress&) {
        ++calls;
        return false;
    };
    auto fd = memfd_with(bytes);
    auto unpacked = fbfs::unpack(*target.store, fd.get(), stop);
    REQUIRE_FALSE(unpacked);
    CHECK(unpacked.error().code == ECANCELED);
    check_message(unpacked.error(), {"nothing was changed"});
    CHECK(calls >= 1);
    check_unchanged(before, state_of(*target.store));
    CHECK(unpack_temps(*target.store).empty());

    calls = 0;
    UniqueFd out(::memfd_create("fbfs-pack-test", MFD_CLOEXEC));
    auto packed = fbfs::pack_store(*source.store, {}, out.get(), {}, stop);
    REQUIRE_FALSE(packed);
    CHECK(packed.error().code == ECANCELED);
    CHECK(calls == 1);
    // A volume whose pack was stopped can be packed (and mounted) again: its lock is gone.
    CHECK_FALSE(VolumeLock::holder(source.store->root(), "vol").has_value());
    CHECK(pack_of(*source.store).starts_with("FBFSPACK"));
}

TEST_CASE("pack: an object table listing an object no volume names is refused", "[store][pack]") {
    auto p = split(pack_snapshots({base_volume()}, base_objects()));
    p.objects.push_back({ObjectId::of("stray"), 5});
    Target target;
    check_message(target.refused(assemble(p)), {"damaged", "no volume names"});
}

// ---- hostile metadata ---------------------------------------------------------------------------

TEST_CASE("pack: entry names that are not one path component are refused", "[store][pack]") {
    Target target;
    struct Case {
        std::string name;
        std::string shown;
    };
    std::vector<Case> cases{
        {"", "\"\""},
        {".", "\".\""},
        {"..", "\"..\""},
        {"a/b", "\"a/b\""},
        {std::string("a\0b", 3), "\"a\\x00b\""},
        {"a/\x1b[2J\nb", "\"a/\\x1b[2J\\x0ab\""},
        {"../../escape", "\"../../escape\""},
        {std::string(256, 'n'), "not a file name"},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION("name of " << c.name.size() << " bytes: " << c.shown) {
            auto v = base_volume();
            add_empty_file(v, 4, c.name);
            auto error = target.refused(pack_snapshots({v}, base_objects()));
            check_message(error, {"damaged", "vol", "not a file name", c.shown});
        }
    }
    // The longest name there is, 255 bytes, is fine.
    auto v = base_volume();
    add_empty_file(v, 4, std::string(255, 'n'));
    must(unpack_file(*target.store, pack_snapshots({v}, base_objects())));
    CHECK(describe(snapshot_of(*target.store, "vol")) == describe(v));
}

TEST_CASE("pack: volume names that are not safe file names are refused", "[store][pack]") {
    Target target;
    for (const std::string& name :
         std::vector<std::string>{"../x", "a/b", ".hidden", "", std::string(129, 'v')}) {
        DYNAMIC_SECTION("volume name '" << name << "'") {
            auto error = target.refused(pack_snapshots({base_volume(name)}, base_objects()));
            check_message(error, {"damaged", "invalid volume name", "'" + name + "'"});
            CHECK_FALSE(fs::exists(target.tmp / "x.lock"));
            CHECK_FALSE(fs::exists(target.tmp / "x"));
        }
    }
}

TEST_CASE("pack: symlink targets pointing outside are stored as data and never followed",
          "[store][pack]") {
    Target target;
    auto outside = target.tmp / "outside";
    auto v = base_volume();
    std::vector<std::string> targets{"/etc/passwd", "../../outside", outside.string(),
                                     "../outside/../outside"};
    InodeNumber ino = 10;
    for (const auto& t : targets) {
        InodeRecord link = record(S_IFLNK | 0777, 1);
        link.symlink_target = t;
        link.size = t.size();
        v.inodes[ino] = link;
        v.entries.push_back({k_root_inode, "link" + std::to_string(ino), {ino, DT_LNK}});
        ++ino;
    }
    std::sort(v.entries.begin(), v.entries.end(), [](const auto& a, const auto& b) {
        return std::tie(a.parent, a.name) < std::tie(b.parent, b.name);
    });
    auto files_before = files_of(target.tmp.path());
    auto summary = must(unpack_file(*target.store, pack_snapshots({v}, base_objects())));
    CHECK(summary.volumes == 1);
    auto unpacked = snapshot_of(*target.store, "vol");
    CHECK(describe(unpacked) == describe(v));
    for (InodeNumber i = 10; i < ino; ++i) {
        CHECK(unpacked.inodes.at(i).symlink_target == targets[i - 10]);
    }
    CHECK_FALSE(fs::exists(outside));
    CHECK_FALSE(fs::exists(fs::symlink_status(outside)));
    // Outside the store nothing appeared; inside it only objects, locks and metadata changed.
    auto files_after = files_of(target.tmp.path());
    for (const auto& [path, line] : files_after) {
        INFO(path);
        CHECK(path.starts_with("store"));
        if (!files_before.contains(path)) {
            bool expected_place =
                path.starts_with("store/objects/") || path.starts_with("store/locks/");
            CHECK(expected_place);
            CHECK(line.substr(0, 7) != "symlink");
        }
    }
    check_pool_consistent(*target.store);
}

TEST_CASE("pack: an entry naming an inode the volume lacks is refused", "[store][pack]") {
    Target target;
    auto v = base_volume();
    v.entries.push_back({k_root_inode, "ghost", {99, DT_REG}});
    check_message(target.refused(pack_snapshots({v}, base_objects())),
                  {"damaged", "vol", "\"ghost\"", "99"});
}

TEST_CASE("pack: directory loops are refused", "[store][pack]") {
    Target target;
    SECTION("two directories naming each other, apart from the root") {
        auto v = base_volume();
        v.inodes[4] = record(S_IFDIR | 0755, 3);
        v.inodes[5] = record(S_IFDIR | 0755, 3);
        v.entries.push_back({4, "b", {5, DT_DIR}});
        v.entries.push_back({5, "a", {4, DT_DIR}});
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "vol", "cannot be reached"});
    }
    SECTION("a directory inside itself, reachable from the root") {
        // Written with pack_format directly: write_pack walks the tree and would follow it.
        auto v = base_volume();
        v.inodes[3].nlink = 3;
        v.entries.push_back({3, "self", {3, DT_DIR}});
        Parts p;
        p.volumes = {v};
        p.objects = {{ObjectId::of(k_file_bytes), k_file_bytes.size()}};
        auto real = split(pack_snapshots({base_volume()}, base_objects()));
        p.frames = real.frames;
        p.frame_table = real.frame_table;
        check_message(target.refused(assemble(p)), {"damaged", "vol", "inode 3", "link count"});
    }
    SECTION("the root named inside a directory") {
        auto v = base_volume();
        v.inodes[3].nlink = 3;
        v.entries.push_back({3, "up", {k_root_inode, DT_DIR}});
        Parts p;
        p.volumes = {v};
        p.objects = {{ObjectId::of(k_file_bytes), k_file_bytes.size()}};
        auto real = split(pack_snapshots({base_volume()}, base_objects()));
        p.frames = real.frames;
        p.frame_table = real.frame_table;
        check_message(target.refused(assemble(p)), {"damaged", "vol", "\"up\""});
    }
}

TEST_CASE("pack: link counts that do not add up are refused", "[store][pack]") {
    Target target;
    SECTION("a file with two links and one name") {
        auto v = base_volume();
        v.inodes[2].nlink = 2;
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "vol", "inode 2", "link count"});
    }
    SECTION("a file with one link and two names") {
        auto v = base_volume();
        v.entries.push_back({3, "again", {2, DT_REG}});
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "vol", "inode 2", "link count"});
    }
    SECTION("a directory whose count leaves out a subdirectory") {
        auto v = base_volume();
        v.inodes[k_root_inode].nlink = 2;
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "vol", "inode 1", "link count"});
    }
    SECTION("an inode with no links") {
        auto v = base_volume();
        v.inodes[2].nlink = 0;
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "vol", "inode 2", "no links"});
    }
}

TEST_CASE("pack: inconsistent inodes and stamps are refused", "[store][pack]") {
    Target target;
    SECTION("a file whose size is not its object's") {
        // write_pack reads an object for as many bytes as its inode says, so the inode's size is
        // changed in a pack already made.
        auto p = split(pack_snapshots({base_volume()}, base_objects()));
        p.volumes[0].inodes[2].size += 1;
        check_message(target.refused(assemble(p)), {"damaged", "inode 2", "size"});
    }
    SECTION("a non-empty file without an object") {
        auto v = base_volume();
        v.inodes[2].object.reset();
        check_message(target.refused(pack_snapshots({v}, {})), {"damaged", "inode 2", "no object"});
    }
    SECTION("a directory naming an object") {
        auto v = base_volume();
        v.inodes[3].object = ObjectId::of(k_file_bytes);
        v.inodes[3].size = k_file_bytes.size();
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "inode 3", "not a regular file"});
    }
    SECTION("an entry whose type is not its inode's") {
        auto v = base_volume();
        v.entries[1].value.type = DT_DIR;
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "\"file\"", "type"});
    }
    SECTION("a mode that is no file type") {
        auto v = base_volume();
        v.inodes[2].mode = 0170644;
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "inode 2", "type"});
    }
    SECTION("an inode number the volume has not handed out yet") {
        auto v = base_volume();
        v.next_inode = 3;
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "inode 3", "next inode"});
    }
    SECTION("a stamp whose path climbs out of the source tree") {
        auto v = base_volume();
        v.stamps.push_back({"../x", LowerStamp{ObjectId::of("x"), 1, k_time}});
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "stamp", "\"../x\""});
        v.stamps = {{"/etc/passwd", LowerStamp{ObjectId::of("x"), 1, k_time}}};
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "stamp", "\"/etc/passwd\""});
    }
    SECTION("a symlink whose target holds a NUL or is longer than a path") {
        auto v = base_volume();
        InodeRecord link = record(S_IFLNK | 0777, 1);
        link.symlink_target = std::string("/etc\0/passwd", 12);
        link.size = link.symlink_target.size();
        v.inodes[4] = link;
        v.entries.push_back({k_root_inode, "nul-link", {4, DT_LNK}});
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "inode 4", "symlink"});
        v.inodes[4].symlink_target = std::string(4096, 'a');
        v.inodes[4].size = 4096;
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "inode 4", "symlink"});
    }
    SECTION("a whiteout naming an inode") {
        auto v = base_volume();
        v.entries.push_back({k_root_inode, "wh", {2, DT_WHT}});
        v.inodes[2].nlink = 2;
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "whiteout", "\"wh\""});
    }
    SECTION("a symlink with an empty target") {
        auto v = base_volume();
        v.inodes[4] = record(S_IFLNK | 0777, 1);
        v.entries.push_back({k_root_inode, "empty-link", {4, DT_LNK}});
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "inode 4", "symlink"});
    }
    SECTION("the same volume twice") {
        check_message(
            target.refused(pack_snapshots({base_volume(), base_volume()}, base_objects())),
            {"damaged", "'vol'", "twice"});
    }
    SECTION("a volume without a root directory") {
        auto v = base_volume();
        v.inodes[k_root_inode].mode = S_IFREG | 0644;
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "vol", "root"});
    }
}

TEST_CASE("pack: names with escape sequences or line breaks are refused on one line, escaped",
          "[store][pack]") {
    // Each of these names is refused for another reason; the message names it, and must not
    // hand its bytes to the terminal that shows the error.
    Target target;
    const std::string hostile = "x\x1b]0;owned\x07\x1b[2J\nfbfs: fake line\r";
    const std::string shown = "x\\x1b]0;owned\\x07\\x1b[2J\\x0afbfs: fake line\\x0d";
    SECTION("an entry whose type is not its inode's") {
        auto v = base_volume();
        add_empty_file(v, 4, hostile);
        for (auto& e : v.entries) {
            if (e.name == hostile) {
                e.value.type = DT_DIR;
            }
        }
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "\"" + shown + "\"", "wrong file type"});
    }
    SECTION("a whiteout naming an inode") {
        auto v = base_volume();
        v.entries.push_back({k_root_inode, hostile, {2, DT_WHT}});
        v.inodes[2].nlink = 2;
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "whiteout", "\"" + shown + "\""});
    }
    SECTION("a stamp whose path climbs out") {
        auto v = base_volume();
        v.stamps.push_back({"../" + hostile, LowerStamp{ObjectId::of("x"), 1, k_time}});
        check_message(target.refused(pack_snapshots({v}, base_objects())),
                      {"damaged", "stamp", "\"../" + shown + "\""});
    }
    SECTION("a volume name") {
        check_message(target.refused(pack_snapshots({base_volume(hostile)}, base_objects())),
                      {"damaged", "invalid volume name", "'" + shown + "'"});
    }
}

// ---- extended attributes ------------------------------------------------------------------------

TEST_CASE("pack: attributes a mount would have refused are refused and change nothing",
          "[store][pack]") {
    Target target;
    auto v = base_volume();
    auto refused_with = [&](std::vector<fbfs::SnapshotXattr> xattrs,
                            std::initializer_list<std::string_view> parts) {
        auto bad = v;
        bad.xattrs = std::move(xattrs);
        check_message(target.refused(pack_snapshots({bad}, base_objects())), parts);
    };
    SECTION("an attribute of an inode the volume lacks") {
        refused_with({{7, {"user.a", "1"}}}, {"damaged", "'user.a'", "inode 7", "lacks"});
    }
    SECTION("names no mount stores") {
        refused_with({{2, {"user.", "1"}}}, {"damaged", "inode 2", "'user.'"});
        refused_with({{2, {"system.posix_acl_access", "1"}}},
                     {"damaged", "inode 2", "system.posix_acl_access"});
        refused_with({{2, {"other.x", "1"}}}, {"damaged", "inode 2", "'other.x'"});
        refused_with({{2, {std::string("user.a\0b", 8), "1"}}},
                     {"damaged", "inode 2", "'user.a\\x00b'"});
        refused_with({{2, {"user." + std::string(251, 'n'), "1"}}}, {"damaged", "inode 2"});
    }
    SECTION("a user. attribute on what is no file or directory") {
        v.inodes[4] = record(S_IFIFO | 0644, 1);
        v.entries.push_back({k_root_inode, "pipe", {4, DT_FIFO}});
        refused_with({{4, {"user.a", "1"}}}, {"damaged", "inode 4", "'user.a'", "directory"});
    }
    SECTION("more than an inode holds") {
        refused_with(
            {{3, {"user.a", std::string(2000, 'a')}}, {3, {"user.b", std::string(2100, 'b')}}},
            {"damaged", "inode 3", "4096"});
        refused_with({{3, {"trusted.a", std::string(5000, 'a')}}}, {"damaged", "inode 3", "4096"});
    }
    SECTION("the same attribute twice, or out of order") {
        refused_with({{2, {"user.a", "1"}}, {2, {"user.a", "2"}}}, {"damaged", "inode 2", "twice"});
        refused_with({{2, {"user.b", "1"}}, {2, {"user.a", "2"}}},
                     {"damaged", "'user.a'", "order"});
        refused_with({{3, {"user.a", "1"}}, {2, {"user.b", "2"}}}, {"damaged", "inode 2", "order"});
        // A name that breaks no rule but its order still gives a one-line message.
        refused_with({{2, {"user.a\nb", "1"}}, {2, {"user.a\nb", "2"}}},
                     {"damaged", "inode 2", "'user.a\\x0ab'", "twice"});
    }
    SECTION("a record cut short inside a sealed metadata section") {
        v.xattrs = {{2, {"user.a", "value"}}};
        auto p = split(pack_snapshots({v}, base_objects()));
        auto raw = pack::encode_metadata(p.volumes, p.objects, p.version);
        for (std::size_t cut : {1, 3, 8}) {  // in its value, in its name, in its count
            auto bytes =
                assemble_raw(p.header, object_table_section(pack::encode_object_table(p.objects)),
                             metadata_section(raw.substr(0, raw.size() - cut)), p.frames,
                             frame_table_section(pack::encode_frame_table(p.frame_table)));
            check_message(target.refused(bytes), {"damaged", "metadata", "middle of a record"});
        }
    }
}

TEST_CASE("pack: attributes that fill an inode exactly come back, also on a fresh store's volume",
          "[store][pack]") {
    // 4096 bytes in all: two attributes of 16 + name + value each.
    auto v = base_volume();
    v.xattrs = {{2, {"user.a", std::string(2048 - 16 - 6, 'a')}},
                {2, {"user.b", std::string(2048 - 16 - 6, 'b')}},
                {3, {"security.selinux", "system_u:object_r:x_t:s0"}}};
    TempDir dest_dir;
    auto dest = open_store(dest_dir / "store");
    must(unpack_file(*dest, pack_snapshots({v}, base_objects())));
    CHECK(snapshot_of(*dest, "vol").xattrs == v.xattrs);
    auto tree = must(VolumeTree::open(*dest, "vol", owner_uid(), owner_gid()));
    CHECK(must(tree.xattr(2, "user.b")) == std::optional<std::string>(v.xattrs[1].xattr.value));
    CHECK(must(tree.xattrs(3)).size() == 1);
}

TEST_CASE("pack: a version 1 pack, from before attributes, unpacks and leaves the volume none",
          "[store][pack]") {
    // tests/fuzz/corpus/valid-v1-files.pack: the same bytes as fbfs wrote before pack format 2.
    auto bytes =
        fbfs::test::read_path(fs::path(FBFS_SOURCE_DIR) / "tests/fuzz/corpus/valid-v1-files.pack");
    fbfs::ByteReader header(std::string_view(bytes).substr(pack::k_magic.size()));
    std::uint32_t version = 0;
    REQUIRE(header.le(version));
    REQUIRE(version == 1);

    Target target;
    build_volume(*target.store, "files", "old");  // attributes on inodes the pack reuses
    REQUIRE_FALSE(snapshot_of(*target.store, "files").xattrs.empty());
    auto other = volumes_of(*target.store)["other"];
    auto summary = must(unpack_file(*target.store, bytes));
    CHECK(summary.volumes == 1);
    auto files = snapshot_of(*target.store, "files");
    CHECK(files.xattrs.empty());
    std::set<std::string> names;
    for (const auto& e : files.entries) {
        names.insert(e.name);
    }
    CHECK(names == std::set<std::string>{"Makefile", "empty", "gone.h", "latest", "main-link.c",
                                         "main.c", "pipe", "src", "sub", "util.h"});
    CHECK(files.stamps.size() == 2);
    CHECK(volumes_of(*target.store)["other"] == other);
    check_pool_consistent(*target.store);

    // No row of the old attributes is left behind either, where no inode shows it.
    std::size_t rows = 0;
    must(target.store->env().read([&](LmdbTxn& txn) -> Result<void> {
        return fbfs::for_each_prefix(txn, target.store->tables().xattrs, "", [&](auto, auto) {
            ++rows;
            return true;
        });
    }));
    CHECK(rows == snapshot_of(*target.store, "vol").xattrs.size() +
                      snapshot_of(*target.store, "other").xattrs.size());
}

TEST_CASE("pack: a pack is written as version 1 unless a volume has attributes", "[store][pack]") {
    // An fbfs from before attributes keeps reading the packs it could have written itself.
    auto version_of = [](std::string_view bytes) { return must(pack::check_header(bytes)); };
    CHECK(version_of(pack_snapshots({base_volume()}, base_objects())) == 1);
    auto with = base_volume("with");
    with.xattrs = {{3, {"user.a", "1"}}};
    CHECK(version_of(pack_snapshots({base_volume(), with}, base_objects())) == 2);
    Source source;
    CHECK(version_of(pack_of(*source.store)) == 2);

    // A version 1 pack has no room for them: its metadata ends where version 2's attributes
    // start, so a version 1 header on version 2 metadata is damage, not a volume without them.
    auto p = split(pack_snapshots({with}, base_objects()));
    p.header = pack::encode_header(1);
    Target target;
    check_message(target.refused(assemble(p)), {"damaged", "metadata"});
}
