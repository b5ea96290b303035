#include "store/remote/manifest.h"

#include <charconv>
#include <optional>
#include <unordered_set>

#include "store/base/byte_codec.h"

namespace fbfs {

namespace {

constexpr std::size_t k_header_digested = 16;
constexpr std::size_t k_header_size = k_header_digested + ObjectId::k_size;
constexpr int k_level = 3;

std::unexpected<Error> damaged(std::string_view what) {
    return make_error(EBADMSG, fmt::format("the manifest is damaged: {} (push it again)", what));
}

// One section at the front of `rest`, which then starts after it.
Result<std::string> take_section(std::string_view& rest, pack::SectionKind kind) {
    if (rest.size() < pack::k_section_header_size) {
        return damaged(fmt::format("it ends inside its {}", pack::section_name(kind)));
    }
    std::string_view head = rest.substr(0, pack::k_section_header_size);
    TRY_ASSIGN(auto header, pack::decode_section_header(head, kind));
    if (header.stored_size > rest.size() - head.size()) {
        return damaged(fmt::format("it ends inside its {}", pack::section_name(kind)));
    }
    std::string_view stored = rest.substr(head.size(), header.stored_size);
    rest.remove_prefix(head.size() + header.stored_size);
    auto raw = pack::open_section(header, head, stored);
    if (!raw) {
        return damaged(raw.error().message);
    }
    return raw;
}

}  // namespace

Result<std::string> encode_manifest(const std::vector<VolumeSnapshot>& volumes) {
    std::vector<pack::PackedObject> objects;
    std::unordered_set<ObjectId> seen;
    for (const auto& v : volumes) {
        for (const auto& [ino, record] : v.inodes) {
            if (record.object && seen.insert(*record.object).second) {
                objects.push_back({*record.object, record.size});
            }
        }
    }
    // The metadata section is laid out as the oldest pack format that holds these volumes.
    std::uint32_t layout = pack::version_for(volumes);
    std::string head =
        ByteWriter().bytes(k_manifest_magic).le(k_manifest_version).le(layout).take();
    std::string out = head + std::string(ObjectId::of(head).raw());
    TRY_ASSIGN(auto table, pack::encode_section(pack::SectionKind::object_table,
                                                pack::encode_object_table(objects), k_level));
    TRY_ASSIGN(auto metadata,
               pack::encode_section(pack::SectionKind::metadata,
                                    pack::encode_metadata(volumes, objects, layout), k_level));
    return out + table + metadata;
}

Result<Manifest> decode_manifest(std::string_view bytes) {
    if (!bytes.starts_with(k_manifest_magic)) {
        return make_error(EINVAL,
                          "not an fbfs manifest (it does not start with FBFSMNFT): the remote "
                          "entry names something else; push again with fbfs push");
    }
    if (bytes.size() < k_header_size) {
        return damaged("it ends inside its header");
    }
    if (ObjectId::of(bytes.substr(0, k_header_digested)).raw() !=
        bytes.substr(k_header_digested, ObjectId::k_size)) {
        return damaged("its header does not match its checksum");
    }
    ByteReader in(bytes.substr(k_manifest_magic.size(), 8));
    std::uint32_t version = 0;
    std::uint32_t layout = 0;
    in.le(version);
    in.le(layout);
    if (version > k_manifest_version || layout > pack::k_version) {
        return make_error(EPROTONOSUPPORT,
                          fmt::format("the manifest has format version {} (metadata of pack format "
                                      "{}), newer than this fbfs reads ({}, {}); pull it with a "
                                      "newer fbfs",
                                      version, layout, k_manifest_version, pack::k_version));
    }
    if (version == 0 || layout == 0) {
        return damaged(fmt::format("version {} with metadata layout {}", version, layout));
    }
    std::string_view rest = bytes.substr(k_header_size);
    TRY_ASSIGN(auto table, take_section(rest, pack::SectionKind::object_table));
    TRY_ASSIGN(auto metadata, take_section(rest, pack::SectionKind::metadata));
    if (!rest.empty()) {
        return damaged(fmt::format("{} bytes follow its last section", rest.size()));
    }
    auto objects = pack::decode_object_table(table);
    if (!objects) {
        return damaged(objects.error().message);
    }
    auto volumes = pack::decode_metadata(metadata, *objects, layout);
    if (!volumes) {
        return damaged(volumes.error().message);
    }
    if (auto ok = pack::check_volumes(*volumes, *objects); !ok) {
        return damaged(ok.error().message);
    }
    return Manifest{std::move(*volumes), std::move(*objects)};
}

std::string encode_manifest_ref(const ManifestRef& ref) {
    return fmt::format("fbfs-manifest {} {} {}\n", k_manifest_version, ref.id.hex(), ref.size);
}

std::optional<ManifestRef> decode_manifest_ref(std::string_view value) {
    constexpr std::string_view prefix = "fbfs-manifest 1 ";
    if (!value.starts_with(prefix) || !value.ends_with('\n')) {
        return std::nullopt;
    }
    value.remove_prefix(prefix.size());
    value.remove_suffix(1);
    auto space = value.find(' ');
    if (space == std::string_view::npos) {
        return std::nullopt;
    }
    auto id = ObjectId::parse(value.substr(0, space));
    std::string_view size_text = value.substr(space + 1);
    std::uint64_t size = 0;
    auto [end, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size);
    if (!id || ec != std::errc{} || end != size_text.data() + size_text.size()) {
        return std::nullopt;
    }
    return ManifestRef{*id, size};
}

}  // namespace fbfs
