#include "store/pack/pack_format.h"

#include <zstd.h>

#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "store/base/byte_codec.h"
#include "store/base/printable.h"
#include "store/pack/zstd_decoder.h"
#include "store/pack/zstd_encoder.h"

namespace fbfs::pack {

namespace {

constexpr std::size_t k_header_digested = 16;          // magic, version, flags
constexpr std::size_t k_section_header_digested = 24;  // kind, flags, stored size, raw size
constexpr std::size_t k_footer_digested = 40;          // the five offsets
constexpr std::uint8_t k_has_object = 1;

ObjectId digest(std::string_view a, std::string_view b = {}) {
    Sha256 sha;
    sha.update(a.data(), a.size());
    sha.update(b.data(), b.size());
    return sha.finish();
}

// Decompresses the single zstd frame `stored`, which must hold exactly `raw_size` bytes. Grows
// its output only as bytes arrive, so a lying size cannot make it allocate.
Result<std::string> decompress_exact(std::string_view stored, std::uint64_t raw_size,
                                     std::string_view what) {
    TRY_ASSIGN(auto dctx, make_dctx(k_max_window_log));
    std::string out;
    ZSTD_inBuffer in{stored.data(), stored.size(), 0};
    std::size_t rc = 1;
    while (rc != 0) {
        std::size_t chunk = 1 << 20;
        std::size_t used = out.size();
        out.resize(used + chunk);
        ZSTD_outBuffer o{out.data() + used, chunk, 0};
        rc = ZSTD_decompressStream(dctx.get(), &o, &in);
        out.resize(used + o.pos);
        if (ZSTD_isError(rc)) {
            return damaged(
                fmt::format("the {} does not decompress ({})", what, ZSTD_getErrorName(rc)));
        }
        if (out.size() > raw_size) {
            return damaged(fmt::format("the {} holds more than its {} bytes", what, raw_size));
        }
        if (rc != 0 && in.pos == in.size && o.pos < chunk) {
            return damaged(fmt::format("the {} ends inside its zstd frame", what));
        }
    }
    if (in.pos != in.size || out.size() != raw_size) {
        return damaged(fmt::format("the {} is not one zstd frame of {} bytes", what, raw_size));
    }
    return out;
}

std::unexpected<Error> short_metadata() {
    return damaged("the metadata ends in the middle of a record");
}

bool read_id(ByteReader& in, ObjectId& id) {
    std::string_view raw;
    if (!in.bytes(ObjectId::k_size, raw)) {
        return false;
    }
    id = *ObjectId::from_raw(raw);
    return true;
}

template <class Size>
bool read_string(ByteReader& in, std::string& out) {
    Size size = 0;
    std::string_view bytes;
    if (!in.le(size) || !in.bytes(size, bytes)) {
        return false;
    }
    out = std::string(bytes);
    return true;
}

void encode_inode(ByteWriter& w, InodeNumber ino, const InodeRecord& r,
                  const std::unordered_map<ObjectId, std::uint64_t>& index) {
    w.le(ino).le(r.mode).le(r.uid).le(r.gid).le(r.nlink).le(r.size).le(r.rdev);
    w.le(r.atime).le(r.mtime).le(r.ctime).le(r.flags);
    w.le(static_cast<std::uint8_t>(r.object ? k_has_object : 0));
    if (r.object) {
        w.le(index.at(*r.object));
    }
    w.le(static_cast<std::uint32_t>(r.symlink_target.size())).bytes(r.symlink_target);
}

bool decode_inode(ByteReader& in, InodeNumber& ino, InodeRecord& r,
                  const std::vector<PackedObject>& objects) {
    std::uint8_t has_object = 0;
    if (!(in.le(ino) && in.le(r.mode) && in.le(r.uid) && in.le(r.gid) && in.le(r.nlink) &&
          in.le(r.size) && in.le(r.rdev) && in.le(r.atime) && in.le(r.mtime) && in.le(r.ctime) &&
          in.le(r.flags) && in.le(has_object))) {
        return false;
    }
    if (has_object == k_has_object) {
        std::uint64_t index = 0;
        if (!in.le(index) || index >= objects.size()) {
            return false;
        }
        r.object = objects[index].id;
    } else if (has_object != 0) {
        return false;
    }
    return read_string<std::uint32_t>(in, r.symlink_target);
}

// A volume's extended attributes (version 2 on): a count, then each attribute's inode, name and
// value.
void encode_xattrs(ByteWriter& w, const std::vector<SnapshotXattr>& xattrs) {
    w.le(static_cast<std::uint64_t>(xattrs.size()));
    for (const auto& x : xattrs) {
        w.le(x.ino).le(static_cast<std::uint16_t>(x.xattr.name.size())).bytes(x.xattr.name);
        w.le(static_cast<std::uint32_t>(x.xattr.value.size())).bytes(x.xattr.value);
    }
}

bool decode_xattrs(ByteReader& in, std::vector<SnapshotXattr>& xattrs) {
    std::uint64_t count = 0;
    if (!in.le(count)) {
        return false;
    }
    for (std::uint64_t i = 0; i < count; ++i) {
        SnapshotXattr x;
        if (!(in.le(x.ino) && read_string<std::uint16_t>(in, x.xattr.name) &&
              read_string<std::uint32_t>(in, x.xattr.value))) {
            return false;
        }
        xattrs.push_back(std::move(x));
    }
    return true;
}

Result<void> decode_volume(ByteReader& in, VolumeSnapshot& v,
                           const std::vector<PackedObject>& objects, std::uint32_t version) {
    std::uint64_t count = 0;
    if (!(read_string<std::uint16_t>(in, v.name) && in.le(v.next_inode) && in.le(count))) {
        return short_metadata();
    }
    for (std::uint64_t i = 0; i < count; ++i) {
        InodeNumber ino = 0;
        InodeRecord record;
        if (!decode_inode(in, ino, record, objects)) {
            return short_metadata();
        }
        if (!v.inodes.empty() && ino <= v.inodes.rbegin()->first) {
            return damaged(
                fmt::format("volume '{}' lists inode {} out of order", printable(v.name), ino));
        }
        v.inodes.emplace_hint(v.inodes.end(), ino, std::move(record));
    }
    if (!in.le(count)) {
        return short_metadata();
    }
    for (std::uint64_t i = 0; i < count; ++i) {
        SnapshotEntry e;
        if (!(in.le(e.parent) && read_string<std::uint16_t>(in, e.name) && in.le(e.value.ino) &&
              in.le(e.value.type))) {
            return short_metadata();
        }
        v.entries.push_back(std::move(e));
    }
    if (!in.le(count)) {
        return short_metadata();
    }
    for (std::uint64_t i = 0; i < count; ++i) {
        SnapshotStamp s;
        if (!(read_string<std::uint32_t>(in, s.path) && read_id(in, s.stamp.content) &&
              in.le(s.stamp.size) && in.le(s.stamp.shown_mtime))) {
            return short_metadata();
        }
        v.stamps.push_back(std::move(s));
    }
    if (version >= 2 && !decode_xattrs(in, v.xattrs)) {
        return short_metadata();
    }
    return {};
}

}  // namespace

std::unexpected<Error> damaged(std::string_view what) {
    return make_error(EINVAL, fmt::format("the pack is damaged: {} (make the pack again)", what));
}

std::string_view section_name(SectionKind kind) {
    switch (kind) {
        case SectionKind::metadata:
            return "metadata";
        case SectionKind::object_table:
            return "object table";
        case SectionKind::frame_table:
            return "frame table";
    }
    return "unknown section";
}

std::uint32_t version_for(const std::vector<VolumeSnapshot>& volumes) {
    for (const auto& v : volumes) {
        if (!v.xattrs.empty()) {
            return 2;
        }
    }
    return 1;
}

std::string encode_header(std::uint32_t version) {
    std::string head = ByteWriter().bytes(k_magic).le(version).le(std::uint32_t{0}).take();
    return head + std::string(digest(head).raw());
}

Result<std::uint32_t> check_header(std::string_view bytes) {
    if (bytes.substr(0, k_magic.size()) != k_magic.substr(0, bytes.size()) || bytes.empty()) {
        return make_error(EINVAL,
                          "not an fbfs pack (it does not start with FBFSPACK); give a "
                          "file that fbfs pack wrote");
    }
    if (bytes.size() < k_header_size) {
        return damaged(
            fmt::format("it is truncated: it ends at byte {}, inside the header", bytes.size()));
    }
    if (digest(bytes.substr(0, k_header_digested)).raw() !=
        bytes.substr(k_header_digested, ObjectId::k_size)) {
        return damaged("its header does not match its checksum");
    }
    ByteReader in(bytes.substr(k_magic.size()));
    std::uint32_t version = 0;
    std::uint32_t flags = 0;
    in.le(version);
    in.le(flags);
    if (version > k_version) {
        return make_error(EPROTONOSUPPORT,
                          fmt::format("the pack has format version {}, newer than this fbfs "
                                      "reads ({}); unpack it with a newer fbfs",
                                      version, k_version));
    }
    if (version < k_oldest_version || flags != 0) {
        return damaged(
            fmt::format("version {} with flags {:#x} is no valid header", version, flags));
    }
    return version;
}

Result<std::string> encode_section(SectionKind kind, std::string_view raw, int level) {
    if (raw.size() > k_max_section_raw) {
        return make_error(EFBIG, fmt::format("the pack's {} would hold {} bytes, more than a "
                                             "reader accepts ({}): pack fewer volumes at once",
                                             section_name(kind), raw.size(), k_max_section_raw));
    }
    TRY_ASSIGN(auto stored,
               compress_frame(raw, level, fmt::format("the pack's {}", section_name(kind))));
    std::string head = ByteWriter()
                           .le(static_cast<std::uint32_t>(kind))
                           .le(std::uint32_t{0})
                           .le(static_cast<std::uint64_t>(stored.size()))
                           .le(static_cast<std::uint64_t>(raw.size()))
                           .take();
    return head + std::string(digest(head, stored).raw()) + stored;
}

Result<SectionHeader> decode_section_header(std::string_view bytes, SectionKind expected) {
    SectionHeader h;
    std::uint32_t kind = 0;
    std::uint32_t flags = 0;
    ByteReader in(bytes);
    if (!(in.le(kind) && in.le(flags) && in.le(h.stored_size) && in.le(h.raw_size) &&
          read_id(in, h.sha256))) {
        return damaged(fmt::format("the {} is cut short", section_name(expected)));
    }
    h.kind = static_cast<SectionKind>(kind);
    if (h.kind != expected || flags != 0) {
        return damaged(fmt::format("where the {} should start there is something else",
                                   section_name(expected)));
    }
    if (h.raw_size > k_max_section_raw) {
        return damaged(fmt::format("the {} claims {} bytes, more than any pack holds",
                                   section_name(expected), h.raw_size));
    }
    return h;
}

Result<std::string> open_section(const SectionHeader& header, std::string_view header_bytes,
                                 std::string_view stored) {
    if (digest(header_bytes.substr(0, k_section_header_digested), stored) != header.sha256) {
        return damaged(
            fmt::format("the {} does not match its checksum", section_name(header.kind)));
    }
    return decompress_exact(stored, header.raw_size, section_name(header.kind));
}

std::string encode_metadata(const std::vector<VolumeSnapshot>& volumes,
                            const std::vector<PackedObject>& objects, std::uint32_t version) {
    std::unordered_map<ObjectId, std::uint64_t> index;
    for (std::size_t i = 0; i < objects.size(); ++i) {
        index.emplace(objects[i].id, i);
    }
    ByteWriter w;
    w.le(static_cast<std::uint32_t>(volumes.size()));
    for (const auto& v : volumes) {
        w.le(static_cast<std::uint16_t>(v.name.size())).bytes(v.name).le(v.next_inode);
        w.le(static_cast<std::uint64_t>(v.inodes.size()));
        for (const auto& [ino, record] : v.inodes) {
            encode_inode(w, ino, record, index);
        }
        w.le(static_cast<std::uint64_t>(v.entries.size()));
        for (const auto& e : v.entries) {
            w.le(e.parent).le(static_cast<std::uint16_t>(e.name.size())).bytes(e.name);
            w.le(e.value.ino).le(e.value.type);
        }
        w.le(static_cast<std::uint64_t>(v.stamps.size()));
        for (const auto& s : v.stamps) {
            w.le(static_cast<std::uint32_t>(s.path.size())).bytes(s.path);
            w.bytes(s.stamp.content.raw()).le(s.stamp.size).le(s.stamp.shown_mtime);
        }
        if (version >= 2) {
            encode_xattrs(w, v.xattrs);
        }
    }
    return w.take();
}

Result<std::vector<VolumeSnapshot>> decode_metadata(std::string_view raw,
                                                    const std::vector<PackedObject>& objects,
                                                    std::uint32_t version) {
    ByteReader in(raw);
    std::uint32_t count = 0;
    if (!in.le(count)) {
        return short_metadata();
    }
    std::vector<VolumeSnapshot> volumes;
    for (std::uint32_t i = 0; i < count; ++i) {
        VolumeSnapshot v;
        TRY(decode_volume(in, v, objects, version));
        for (const auto& other : volumes) {
            if (other.name == v.name) {
                return damaged(fmt::format("volume '{}' is in it twice", printable(v.name)));
            }
        }
        volumes.push_back(std::move(v));
    }
    if (!in.rest().empty()) {
        return damaged("the metadata has bytes after its last volume");
    }
    return volumes;
}

Result<void> check_volumes(const std::vector<VolumeSnapshot>& volumes,
                           const std::vector<PackedObject>& objects) {
    std::unordered_map<ObjectId, std::uint64_t> sizes;
    for (const auto& o : objects) {
        sizes.emplace(o.id, o.size);
    }
    std::unordered_set<ObjectId> named;
    for (const auto& v : volumes) {
        TRY(check_snapshot(v, sizes));
        for (const auto& [ino, record] : v.inodes) {
            if (record.object) {
                named.insert(*record.object);
            }
        }
    }
    if (named.size() != sizes.size()) {
        return make_error(EINVAL, "its object table lists objects that no volume names");
    }
    return {};
}

std::string encode_object_table(const std::vector<PackedObject>& objects) {
    ByteWriter w;
    w.le(static_cast<std::uint64_t>(objects.size()));
    for (const auto& o : objects) {
        w.bytes(o.id.raw()).le(o.size);
    }
    return w.take();
}

Result<std::vector<PackedObject>> decode_object_table(std::string_view raw) {
    ByteReader in(raw);
    std::uint64_t count = 0;
    constexpr std::size_t k_entry = ObjectId::k_size + 8;
    if (!in.le(count) || in.rest().size() % k_entry != 0 || in.rest().size() / k_entry != count) {
        return damaged("the object table's count does not match its length");
    }
    std::vector<PackedObject> objects(count);
    std::unordered_set<ObjectId> seen;
    std::uint64_t total = 0;
    for (auto& o : objects) {
        read_id(in, o.id);
        in.le(o.size);
        if (!seen.insert(o.id).second) {
            return damaged(fmt::format("the object table lists {} twice", o.id.hex()));
        }
        if (o.size > k_max_stream - total) {
            return damaged("the object table's sizes add up to more than any pack holds");
        }
        total += o.size;
    }
    return objects;
}

std::string encode_frame_table(const std::vector<FrameInfo>& frames) {
    ByteWriter w;
    w.le(static_cast<std::uint64_t>(frames.size()));
    for (const auto& f : frames) {
        w.le(f.raw_size).le(f.stored_size).bytes(f.sha256.raw());
    }
    return w.take();
}

Result<std::vector<FrameInfo>> decode_frame_table(std::string_view raw) {
    ByteReader in(raw);
    std::uint64_t count = 0;
    constexpr std::size_t k_entry = 16 + ObjectId::k_size;
    if (!in.le(count) || in.rest().size() % k_entry != 0 || in.rest().size() / k_entry != count) {
        return damaged("the frame table's count does not match its length");
    }
    std::vector<FrameInfo> frames(count);
    for (auto& f : frames) {
        in.le(f.raw_size);
        in.le(f.stored_size);
        read_id(in, f.sha256);
    }
    return frames;
}

std::string encode_footer(const Footer& f) {
    std::string offsets = ByteWriter()
                              .le(f.object_table_offset)
                              .le(f.metadata_offset)
                              .le(f.frames_offset)
                              .le(f.frame_table_offset)
                              .le(f.footer_offset)
                              .take();
    return offsets + std::string(digest(offsets).raw()) + std::string(k_end_magic);
}

Result<Footer> decode_footer(std::string_view bytes) {
    if (bytes.size() != k_footer_size ||
        bytes.substr(k_footer_size - k_end_magic.size()) != k_end_magic) {
        return damaged("it does not end with the footer FBFSEND");
    }
    if (digest(bytes.substr(0, k_footer_digested)).raw() !=
        bytes.substr(k_footer_digested, ObjectId::k_size)) {
        return damaged("its footer does not match its checksum");
    }
    Footer f;
    ByteReader in(bytes);
    in.le(f.object_table_offset);
    in.le(f.metadata_offset);
    in.le(f.frames_offset);
    in.le(f.frame_table_offset);
    in.le(f.footer_offset);
    return f;
}

}  // namespace fbfs::pack
