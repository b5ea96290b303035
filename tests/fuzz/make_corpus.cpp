// Writes the seed corpus of the pack reader's fuzz target (tests/fuzz/corpus/): small valid packs
// made by write_pack from volumes built here, and broken ones cut or flipped from a valid one.
//   valid-*.pack   read_pack must accept them
//   broken-*.pack  read_pack must refuse them with "the pack is damaged" or "not an fbfs pack"
// tests/store/pack_corpus_test.cpp checks both. The output is the same on every run for the
// same zstd, so running it again only changes the files if the format or zstd did.
//
// Usage: fbfs_pack_corpus DIR   (e.g. DIR = tests/fuzz/corpus)

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "store/base/unique_fd.h"
#include "store/meta/volume_snapshot.h"
#include "store/pack/pack_format.h"
#include "store/pack/pack_writer.h"

namespace fs = std::filesystem;
using namespace fbfs;

namespace {

constexpr TimeNs k_time = 1'700'000'000'000'000'000;

// Builds a consistent volume (one check_snapshot() accepts) and remembers its files' bytes.
class VolumeBuilder {
public:
    VolumeBuilder(std::string name, std::map<ObjectId, std::string>& blobs) : m_blobs(blobs) {
        m_v.name = std::move(name);
        m_v.inodes[k_root_inode] = record(S_IFDIR | 0755, 2);
    }

    InodeNumber dir(InodeNumber parent, const std::string& name, bool opaque = false) {
        InodeRecord r = record(S_IFDIR | 0755, 2);
        r.flags = opaque ? std::uint32_t{InodeRecord::k_opaque} : std::uint32_t{0};
        m_v.inodes[parent].nlink++;
        return add(parent, name, r);
    }
    InodeNumber file(InodeNumber parent, const std::string& name, const std::string& content,
                     bool object_if_empty = false) {
        InodeRecord r = record(S_IFREG | 0644, 1);
        r.size = content.size();
        if (!content.empty() || object_if_empty) {
            r.object = ObjectId::of(content);
            m_blobs[*r.object] = content;
        }
        return add(parent, name, r);
    }
    void link(InodeNumber parent, const std::string& name, InodeNumber ino) {
        m_v.inodes[ino].nlink++;
        m_v.entries.push_back({parent, name, {ino, DT_REG}});
    }
    InodeNumber symlink(InodeNumber parent, const std::string& name, const std::string& target) {
        InodeRecord r = record(S_IFLNK | 0777, 1);
        r.symlink_target = target;
        r.size = target.size();
        return add(parent, name, r);
    }
    void entry(InodeNumber parent, const std::string& name, InodeNumber ino) {
        m_v.entries.push_back(
            {parent, name, {ino, static_cast<std::uint8_t>(IFTODT(m_v.inodes[ino].mode))}});
    }
    InodeNumber fifo(InodeNumber parent, const std::string& name) {
        return add(parent, name, record(S_IFIFO | 0644, 1));
    }
    void whiteout(InodeNumber parent, const std::string& name) {
        m_v.entries.push_back({parent, name, {0, DT_WHT}});
    }
    void xattr(InodeNumber ino, const std::string& name, const std::string& value) {
        m_v.xattrs.push_back({ino, {name, value}});
    }
    void stamp(const std::string& path, const std::string& content) {
        m_v.stamps.push_back({path, {ObjectId::of(content), content.size(), k_time}});
    }

    // `check`: refuse to make a volume that check_snapshot() refuses (off for broken seeds).
    VolumeSnapshot take(bool check = true) {
        std::sort(m_v.entries.begin(), m_v.entries.end(), [](const auto& a, const auto& b) {
            return std::tie(a.parent, a.name) < std::tie(b.parent, b.name);
        });
        std::sort(m_v.stamps.begin(), m_v.stamps.end(),
                  [](const auto& a, const auto& b) { return a.path < b.path; });
        std::sort(m_v.xattrs.begin(), m_v.xattrs.end(), [](const auto& a, const auto& b) {
            return std::tie(a.ino, a.xattr.name) < std::tie(b.ino, b.xattr.name);
        });
        std::unordered_map<ObjectId, std::uint64_t> sizes;
        for (const auto& [id, bytes] : m_blobs) {
            sizes.emplace(id, bytes.size());
        }
        if (auto ok = check_snapshot(m_v, sizes); check && !ok) {
            std::fprintf(stderr, "fbfs_pack_corpus: bad volume: %s\n", ok.error().message.c_str());
            std::exit(1);
        }
        return std::move(m_v);
    }

private:
    static InodeRecord record(std::uint32_t mode, std::uint32_t nlink) {
        InodeRecord r;
        r.mode = mode;
        r.uid = 1000;
        r.gid = 1000;
        r.nlink = nlink;
        r.atime = r.mtime = r.ctime = k_time;
        return r;
    }
    InodeNumber add(InodeNumber parent, const std::string& name, const InodeRecord& r) {
        InodeNumber ino = m_v.next_inode++;
        m_v.inodes[ino] = r;
        m_v.entries.push_back({parent, name, {ino, static_cast<std::uint8_t>(IFTODT(r.mode))}});
        return ino;
    }

    VolumeSnapshot m_v;
    std::map<ObjectId, std::string>& m_blobs;
};

// Bytes that do not compress, the same on every run.
std::string noise(std::size_t size, std::uint32_t seed) {
    std::string out;
    for (std::size_t i = 0; i < size; ++i) {
        seed = seed * 1664525u + 1013904223u;
        out.push_back(static_cast<char>(seed >> 24));
    }
    return out;
}

std::string make_pack(const std::vector<VolumeSnapshot>& volumes,
                      const std::map<ObjectId, std::string>& blobs,
                      std::uint64_t frame_size = std::uint64_t{64} << 20) {
    auto memfd = [](std::string_view bytes) {
        UniqueFd fd(::memfd_create("fbfs-pack-corpus", MFD_CLOEXEC));
        if (!fd ||
            ::write(fd.get(), bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()) ||
            ::lseek(fd.get(), 0, SEEK_SET) != 0) {
            std::perror("fbfs_pack_corpus: memfd");
            std::exit(1);
        }
        return fd;
    };
    UniqueFd out = memfd({});
    PackOptions options;
    options.level = 3;
    options.threads = 1;  // the same bytes on every run
    options.frame_size = frame_size;
    auto written = write_pack(
        out.get(), volumes,
        [&](const ObjectId& id) -> Result<UniqueFd> { return memfd(blobs.at(id)); }, options, {});
    if (!written) {
        std::fprintf(stderr, "fbfs_pack_corpus: write_pack: %s\n", written.error().message.c_str());
        std::exit(1);
    }
    std::string pack(written->packed_bytes, '\0');
    if (::pread(out.get(), pack.data(), pack.size(), 0) != static_cast<ssize_t>(pack.size())) {
        std::perror("fbfs_pack_corpus: reading the pack back");
        std::exit(1);
    }
    return pack;
}

// A whole section of `raw` at level 3.
std::string section(pack::SectionKind kind, std::string_view raw) {
    auto encoded = pack::encode_section(kind, raw, 3);
    if (!encoded) {
        std::fprintf(stderr, "fbfs_pack_corpus: %s\n", encoded.error().message.c_str());
        std::exit(1);
    }
    return *encoded;
}

// A pack of objects that need no frames (none has bytes, or their sizes add up to 0 modulo 2^64),
// put together from pack_format.h's pieces: write_pack() would try to read the objects.
std::string frameless_pack(const std::vector<pack::PackedObject>& objects,
                           const std::vector<VolumeSnapshot>& volumes) {
    pack::Footer footer;
    std::uint32_t version = pack::version_for(volumes);
    std::string out = pack::encode_header(version);
    footer.object_table_offset = out.size();
    out += section(pack::SectionKind::object_table, pack::encode_object_table(objects));
    footer.metadata_offset = out.size();
    out += section(pack::SectionKind::metadata, pack::encode_metadata(volumes, objects, version));
    footer.frames_offset = footer.frame_table_offset = out.size();
    out += section(pack::SectionKind::frame_table, pack::encode_frame_table({}));
    footer.footer_offset = out.size();
    return out + pack::encode_footer(footer);
}

void write_seed(const fs::path& dir, const std::string& name, const std::string& bytes) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) {
        std::fprintf(stderr, "fbfs_pack_corpus: cannot write %s\n", (dir / name).c_str());
        std::exit(1);
    }
    std::printf("%-40s %6zu bytes\n", name.c_str(), bytes.size());
}

std::string flipped(std::string bytes, std::size_t at) {
    bytes.at(at) = static_cast<char>(bytes.at(at) ^ 0x20);
    return bytes;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: fbfs_pack_corpus DIR\n");
        return 2;
    }
    fs::path dir = argv[1];
    fs::create_directories(dir);

    // A store with no volumes.
    write_seed(dir, "valid-empty-store.pack", make_pack({}, {}));

    // A volume of nothing but its root.
    {
        std::map<ObjectId, std::string> blobs;
        VolumeBuilder v("empty", blobs);
        write_seed(dir, "valid-empty-volume.pack", make_pack({v.take()}, blobs));
    }

    // One volume with every kind of entry: files, an empty file, a hard link, a symlink, a fifo,
    // a whiteout, an opaque directory, nested directories, extended attributes (on the hard-linked
    // file, a directory and the symlink) and lower-file stamps. valid-v1-files.pack is the same
    // volume without attributes, which is written as format 1: the same bytes as fbfs wrote
    // before format 2.
    std::string files_pack;
    {
        std::map<ObjectId, std::string> blobs;
        VolumeBuilder v("files", blobs);
        InodeNumber src = v.dir(k_root_inode, "src");
        std::string main_c = "int main(void) { return 0; }\n";
        InodeNumber main = v.file(src, "main.c", main_c);
        v.link(src, "main-link.c", main);
        v.file(src, "empty", "");
        InodeNumber sub = v.dir(src, "sub", true);
        v.file(sub, "util.h", "#pragma once\nint util(int);\n");
        v.whiteout(sub, "gone.h");
        InodeNumber latest = v.symlink(k_root_inode, "latest", "src/main.c");
        v.fifo(k_root_inode, "pipe");
        v.xattr(main, "user.origin", "ci");
        v.xattr(main, "trusted.sum", std::string("\0\x7f\xff", 3));
        v.xattr(sub, "user.dir", "");
        v.xattr(latest, "security.selinux", "system_u:object_r:fbfs_t:s0");
        v.file(k_root_inode, "Makefile", "all:\n\tcc -o app src/main.c\n");
        v.stamp("src/main.c", main_c);
        v.stamp("src/sub/util.h", "#pragma once\n");
        VolumeSnapshot files = v.take();
        files_pack = make_pack({files}, blobs);
        write_seed(dir, "valid-files.pack", files_pack);
        files.xattrs.clear();
        write_seed(dir, "valid-v1-files.pack", make_pack({files}, blobs));
    }

    // Two volumes sharing content, and one volume holding the same content twice: each object
    // is packed once.
    {
        std::map<ObjectId, std::string> blobs;
        std::string shared = "shared between both volumes\n";
        VolumeBuilder a("a", blobs);
        a.file(k_root_inode, "one", shared);
        a.file(k_root_inode, "two", shared);
        a.file(k_root_inode, "only-a", "only in a\n");
        VolumeBuilder b("b", blobs);
        InodeNumber d = b.dir(k_root_inode, "d");
        b.file(d, "copy", shared);
        b.file(k_root_inode, "only-b", "only in b\n");
        write_seed(dir, "valid-two-volumes.pack", make_pack({a.take(), b.take()}, blobs));
    }

    // Objects cut across several small zstd frames, and an object of no bytes at the end of the
    // stream (a file of size 0 that still names an object).
    {
        std::map<ObjectId, std::string> blobs;
        VolumeBuilder v("frames", blobs);
        v.file(k_root_inode, "a.bin", noise(300, 1));
        v.file(k_root_inode, "b.bin", noise(150, 2));
        v.file(k_root_inode, "c.txt", std::string(200, 'c'));
        v.file(k_root_inode, "zz-empty-object", "", true);
        write_seed(dir, "valid-many-frames.pack", make_pack({v.take()}, blobs, 128));
    }

    // Broken packs whose every checksum holds: what only the checks behind them catch.
    {
        std::map<ObjectId, std::string> blobs;
        VolumeBuilder v("dotdot", blobs);
        InodeNumber d = v.dir(k_root_inode, "d");
        v.file(d, "..", "escape\n");
        write_seed(dir, "broken-entry-dotdot.pack", make_pack({v.take(false)}, blobs));
    }
    {
        std::map<ObjectId, std::string> blobs;
        VolumeBuilder v("links", blobs);
        InodeNumber f = v.file(k_root_inode, "f", "linked once, counted twice\n");
        v.link(k_root_inode, "g", f);
        v.entry(k_root_inode, "h", f);  // a third name the link count leaves out
        write_seed(dir, "broken-link-count.pack", make_pack({v.take(false)}, blobs));
    }
    {
        std::map<ObjectId, std::string> blobs;
        VolumeBuilder v("xattrs", blobs);
        v.file(k_root_inode, "f", "attributes of an inode the volume lacks\n");
        v.xattr(9, "user.stray", "x");
        write_seed(dir, "broken-xattr-no-inode.pack", make_pack({v.take(false)}, blobs));
    }
    {
        std::map<ObjectId, std::string> blobs;
        VolumeBuilder v("xattrs", blobs);
        v.xattr(v.fifo(k_root_inode, "pipe"), "user.a", "user attributes are for files");
        write_seed(dir, "broken-xattr-user-on-fifo.pack", make_pack({v.take(false)}, blobs));
    }
    {
        std::map<ObjectId, std::string> blobs;
        VolumeBuilder v("xattrs", blobs);
        v.xattr(k_root_inode, "user.big", std::string(4096, 'x'));
        write_seed(dir, "broken-xattr-too-big.pack", make_pack({v.take(false)}, blobs));
    }
    {
        std::map<ObjectId, std::string> blobs;
        VolumeBuilder v("xattrs", blobs);
        v.xattr(k_root_inode, "system.posix_acl_access", "acl");
        write_seed(dir, "broken-xattr-acl.pack", make_pack({v.take(false)}, blobs));
    }
    {
        std::map<ObjectId, std::string> blobs;
        VolumeBuilder v("unnamed", blobs);
        write_seed(dir, "broken-unnamed-object.pack",
                   frameless_pack({{ObjectId::of(""), 0}}, {v.take()}));
    }

    // Known bugs (see tests/store/pack_corpus_test.cpp): once one is fixed, rename its seed to
    // broken-*.pack, here too.
    //
    // Two objects of 2^63 bytes each: read_pack adds their sizes up to 0, reads no frame, and
    // accepts the pack without ever checking (or handing over) a byte of either object.
    {
        std::map<ObjectId, std::string> blobs;
        VolumeBuilder v("wrap", blobs);
        std::vector<pack::PackedObject> objects{{ObjectId::of("a"), std::uint64_t{1} << 63},
                                                {ObjectId::of("b"), std::uint64_t{1} << 63}};
        InodeNumber a = v.file(k_root_inode, "a", "");
        InodeNumber b = v.file(k_root_inode, "b", "");
        VolumeSnapshot s = v.take();
        for (auto [ino, object] : {std::pair{a, objects[0]}, std::pair{b, objects[1]}}) {
            s.inodes[ino].object = object.id;
            s.inodes[ino].size = object.size;
        }
        write_seed(dir, "broken-object-sizes-wrap.pack", frameless_pack(objects, {s}));
    }

    // Broken packs, all from valid-files.pack.
    auto footer = pack::decode_footer(
        std::string_view(files_pack).substr(files_pack.size() - pack::k_footer_size));
    if (!footer) {
        std::fprintf(stderr, "fbfs_pack_corpus: %s\n", footer.error().message.c_str());
        return 1;
    }
    auto at = [](std::uint64_t offset) { return static_cast<std::size_t>(offset); };
    write_seed(dir, "broken-empty.pack", "");
    write_seed(
        dir, "broken-not-a-pack.pack",
        "#!/bin/sh\n# a shell script, not a pack: it does not start with the magic\nexit 0\n");
    write_seed(dir, "broken-truncated-header.pack", files_pack.substr(0, 30));
    write_seed(
        dir, "broken-truncated-metadata.pack",
        files_pack.substr(0, at(footer->metadata_offset) + pack::k_section_header_size + 10));
    write_seed(dir, "broken-truncated-frames.pack",
               files_pack.substr(0, at(footer->frames_offset) + 5));
    write_seed(dir, "broken-truncated-footer.pack", files_pack.substr(0, files_pack.size() - 10));
    write_seed(dir, "broken-trailing-bytes.pack", files_pack + "trailing");
    write_seed(dir, "broken-flip-header.pack", flipped(files_pack, 12));
    write_seed(
        dir, "broken-flip-object-table.pack",
        flipped(files_pack, at(footer->object_table_offset) + pack::k_section_header_size + 2));
    write_seed(dir, "broken-flip-metadata-size.pack",
               flipped(files_pack, at(footer->metadata_offset) + 16));
    write_seed(dir, "broken-flip-metadata.pack",
               flipped(files_pack, at(footer->metadata_offset) + pack::k_section_header_size + 4));
    write_seed(dir, "broken-flip-frame.pack", flipped(files_pack, at(footer->frames_offset) + 8));
    write_seed(
        dir, "broken-flip-frame-table.pack",
        flipped(files_pack, at(footer->frame_table_offset) + pack::k_section_header_size + 3));
    write_seed(dir, "broken-flip-footer.pack", flipped(files_pack, at(footer->footer_offset) + 1));
    write_seed(dir, "broken-flip-end-magic.pack", flipped(files_pack, files_pack.size() - 2));
    return 0;
}
