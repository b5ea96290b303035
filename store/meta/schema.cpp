#include "store/meta/schema.h"

#include <dirent.h>

#include <cctype>
#include <cstring>

#include "store/base/byte_codec.h"
#include "store/base/printable.h"

namespace fbfs {

namespace {

std::unexpected<Error> corrupt(std::string_view what) {
    return make_error(
        EIO, fmt::format("corrupt {} record in the store metadata (run fbfs verify)", what));
}

constexpr std::uint32_t k_has_object = 1u << 31;  // encoding-only flag: an object id follows

}  // namespace

std::string InodeRecord::encode() const {
    ByteWriter w;
    std::uint32_t stored_flags = flags | (object ? k_has_object : 0);
    w.le(mode).le(uid).le(gid).le(nlink).le(size).le(rdev).le(atime).le(mtime).le(ctime);
    w.le(stored_flags);
    if (object) {
        w.bytes(object->raw());
    }
    w.bytes(symlink_target);
    return w.take();
}

Result<InodeRecord> InodeRecord::decode(std::string_view bytes) {
    InodeRecord r;
    ByteReader in(bytes);
    std::uint32_t stored_flags = 0;
    if (!(in.le(r.mode) && in.le(r.uid) && in.le(r.gid) && in.le(r.nlink) && in.le(r.size) &&
          in.le(r.rdev) && in.le(r.atime) && in.le(r.mtime) && in.le(r.ctime) &&
          in.le(stored_flags))) {
        return corrupt("inode");
    }
    if (stored_flags & k_has_object) {
        std::string_view raw;
        if (!in.bytes(ObjectId::k_size, raw)) {
            return corrupt("inode");
        }
        r.object = ObjectId::from_raw(raw);
    }
    r.flags = stored_flags & ~k_has_object;
    r.symlink_target = std::string(in.rest());
    return r;
}

bool DirentValue::is_whiteout() const {
    return type == DT_WHT;
}

std::string DirentValue::encode() const {
    return ByteWriter().le(ino).le(type).take();
}

Result<DirentValue> DirentValue::decode(std::string_view bytes) {
    DirentValue v;
    ByteReader in(bytes);
    if (!(in.le(v.ino) && in.le(v.type)) || !in.rest().empty()) {
        return corrupt("directory entry");
    }
    return v;
}

std::string LowerStamp::encode() const {
    return ByteWriter().bytes(content.raw()).le(size).le(shown_mtime).take();
}

Result<LowerStamp> LowerStamp::decode(std::string_view bytes) {
    LowerStamp s;
    ByteReader in(bytes);
    std::string_view raw;
    if (!(in.bytes(ObjectId::k_size, raw) && in.le(s.size) && in.le(s.shown_mtime))) {
        return corrupt("lower stamp");
    }
    s.content = *ObjectId::from_raw(raw);
    return s;
}

std::string VolumeRecord::encode() const {
    return ByteWriter().le(id).le(next_inode).take();
}

Result<VolumeRecord> VolumeRecord::decode(std::string_view bytes) {
    VolumeRecord v;
    ByteReader in(bytes);
    if (!(in.le(v.id) && in.le(v.next_inode))) {
        return corrupt("volume");
    }
    return v;
}

std::string volume_prefix(VolumeId volume) {
    return ByteWriter().be(volume).take();
}

std::string inode_key(VolumeId volume, InodeNumber ino) {
    return ByteWriter().be(volume).be(ino).take();
}

std::string dirent_prefix(VolumeId volume, InodeNumber parent) {
    return ByteWriter().be(volume).be(parent).take();
}

std::string dirent_key(VolumeId volume, InodeNumber parent, std::string_view name) {
    return ByteWriter().be(volume).be(parent).bytes(name).take();
}

std::string stamp_key(VolumeId volume, std::string_view relative_path) {
    return ByteWriter().be(volume).bytes(relative_path).take();
}

std::string xattr_key(VolumeId volume, InodeNumber ino, std::string_view name) {
    return ByteWriter().be(volume).be(ino).bytes(name).take();
}

std::optional<InodeNumber> inode_of_key(std::string_view key) {
    if (key.size() != sizeof(VolumeId) + sizeof(InodeNumber)) {
        return std::nullopt;
    }
    InodeNumber ino = 0;
    for (std::size_t i = sizeof(VolumeId); i < key.size(); ++i) {
        ino = ino << 8 | static_cast<unsigned char>(key[i]);
    }
    return ino;
}

std::string encode_u64(std::uint64_t value) {
    return ByteWriter().le(value).take();
}

std::optional<std::uint64_t> decode_u64(std::string_view bytes) {
    std::uint64_t v = 0;
    ByteReader in(bytes);
    if (!in.le(v) || !in.rest().empty()) {
        return std::nullopt;
    }
    return v;
}

Result<void> check_volume_name(std::string_view name) {
    bool ok = !name.empty() && name.size() <= 128 && name.front() != '.';
    for (char c : name) {
        ok =
            ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
    }
    if (!ok) {
        return make_error(EINVAL,
                          fmt::format("invalid volume name '{}' (use 1-128 letters, digits, "
                                      "'.', '_' or '-', not starting with '.')",
                                      printable(name)));
    }
    return {};
}

}  // namespace fbfs
