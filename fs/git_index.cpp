#include "fs/git_index.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <memory>

#include "store/base/fd_io.h"

namespace fbfs {

namespace {

constexpr std::size_t k_header_size = 12;
constexpr std::size_t k_stat_size = 40;   // ten 32-bit fields: ctime, mtime, dev ... size
constexpr std::size_t k_fixed_size = 62;  // stat data, a 20-byte object name, 16-bit flags
constexpr std::uint16_t k_assume_valid = 0x8000;
constexpr std::uint16_t k_extended = 0x4000;
constexpr std::uint16_t k_stage_mask = 0x3000;
constexpr std::uint16_t k_skip_worktree = 0x4000;  // extended flags
constexpr std::uint16_t k_intent_to_add = 0x2000;
constexpr std::uint32_t k_type_mask = 0170000;
constexpr std::uint32_t k_regular = 0100000;

std::uint32_t be32(const char* p) {
    auto b = reinterpret_cast<const unsigned char*>(p);
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
           b[3];
}

std::uint16_t be16(const char* p) {
    auto b = reinterpret_cast<const unsigned char*>(p);
    return static_cast<std::uint16_t>((b[0] << 8) | b[1]);
}

// Git's offset varint (index v4 path prefixes): 7 bits a byte, each continuation adding one.
std::optional<std::uint64_t> read_varint(std::string_view& in) {
    if (in.empty()) {
        return std::nullopt;
    }
    auto c = static_cast<unsigned char>(in[0]);
    in.remove_prefix(1);
    std::uint64_t value = c & 127;
    while (c & 128) {
        if (in.empty() || value > (std::uint64_t{1} << 50)) {
            return std::nullopt;
        }
        c = static_cast<unsigned char>(in[0]);
        in.remove_prefix(1);
        value = ((value + 1) << 7) + (c & 127);
    }
    return value;
}

class Sha1 {
public:
    Sha1() : m_ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
        if (!m_ctx || EVP_DigestInit_ex(m_ctx.get(), EVP_sha1(), nullptr) != 1) {
            throw std::runtime_error("cannot set up SHA-1 (OpenSSL)");
        }
    }
    void update(std::string_view bytes) {
        EVP_DigestUpdate(m_ctx.get(), bytes.data(), bytes.size());
    }
    GitBlobId finish() {
        GitBlobId id{};
        unsigned size = 0;
        EVP_DigestFinal_ex(m_ctx.get(), id.data(), &size);
        return id;
    }

private:
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> m_ctx;
};

std::string blob_header(std::uint64_t size) {
    std::string header = "blob " + std::to_string(size);
    header.push_back('\0');
    return header;
}

}  // namespace

GitBlobId git_blob_id(std::string_view bytes) {
    Sha1 sha;
    sha.update(blob_header(bytes.size()));
    sha.update(bytes);
    return sha.finish();
}

Result<GitBlobId> git_blob_id(int fd, std::uint64_t size) {
    Sha1 sha;
    sha.update(blob_header(size));
    auto read = read_chunks(fd, off_t{0}, nullptr, [&](std::string_view chunk) -> Result<void> {
        sha.update(chunk);
        return {};
    });
    if (!read) {
        return std::unexpected(read.error());
    }
    if (*read != size) {
        return make_error(EAGAIN, fmt::format("{} changed while it was read", fd_name(fd)));
    }
    return sha.finish();
}

Result<GitIndex> GitIndex::parse(std::string_view bytes, TimeNs index_mtime) {
    auto bad = [](std::string_view what) {
        return make_error(EINVAL, fmt::format("git index: {}", what));
    };
    if (bytes.size() < k_header_size + 20 || bytes.substr(0, 4) != "DIRC") {
        return bad("not an index file (no DIRC header)");
    }
    std::uint32_t version = be32(bytes.data() + 4);
    if (version < 2 || version > 4) {
        return bad(fmt::format("version {} (2 to 4 are known)", version));
    }
    std::uint32_t count = be32(bytes.data() + 8);
    GitIndex index;
    index.m_index_mtime = index_mtime;
    index.m_entries.reserve(count);
    std::string_view in = bytes.substr(k_header_size, bytes.size() - k_header_size - 20);
    std::string previous;
    for (std::uint32_t i = 0; i < count; ++i) {
        if (in.size() < k_fixed_size) {
            return bad(fmt::format("entry {} of {} is cut short", i, count));
        }
        const char* p = in.data();
        Entry e{be32(p),      be32(p + 4),  be32(p + 8),  be32(p + 12), be32(p + 20),
                be32(p + 24), be32(p + 28), be32(p + 32), be32(p + 36), {}};
        std::copy_n(reinterpret_cast<const std::uint8_t*>(p + k_stat_size), 20, e.blob.begin());
        std::uint16_t flags = be16(p + 60);
        std::size_t fixed = k_fixed_size;
        std::uint16_t extended = 0;
        if (flags & k_extended) {
            if (version < 3 || in.size() < fixed + 2) {
                return bad(fmt::format("entry {} has extended flags it cannot have", i));
            }
            extended = be16(p + fixed);
            fixed += 2;
        }
        std::string_view rest = in.substr(fixed);
        std::string path;
        if (version == 4) {
            auto strip = read_varint(rest);
            if (!strip || *strip > previous.size()) {
                return bad(fmt::format("entry {} has a bad path prefix", i));
            }
            path = previous.substr(0, previous.size() - *strip);
        }
        auto nul = rest.find('\0');
        if (nul == std::string_view::npos) {
            return bad(fmt::format("entry {}'s path is not terminated", i));
        }
        path.append(rest.substr(0, nul));
        if (version == 4) {
            in = rest.substr(nul + 1);
        } else {
            // Padded with 1 to 8 NULs to a multiple of 8 bytes.
            std::size_t size = (fixed + nul + 8) & ~std::size_t{7};
            if (size > in.size()) {
                return bad(fmt::format("entry {} is cut short", i));
            }
            in.remove_prefix(size);
        }
        previous = path;
        bool trusted = (flags & (k_assume_valid | k_stage_mask)) == 0 &&
                       (extended & (k_skip_worktree | k_intent_to_add)) == 0 &&
                       (e.mode & k_type_mask) == k_regular;
        if (trusted) {
            index.m_entries.emplace(std::move(path), e);
        }
    }
    return index;
}

GitIndex GitIndex::load(const LowerLayer& lower) {
    auto st = lower.stat(".git/index");
    if (!st) {
        return {};  // no repository, or not one with a .git directory here
    }
    auto fd = lower.open_file(".git/index");
    std::string bytes;
    auto read = fd ? read_chunks(fd->get(), off_t{0}, nullptr,
                                 [&](std::string_view chunk) -> Result<void> {
                                     bytes.append(chunk);
                                     return {};
                                 })
                   : Result<std::uint64_t>(std::unexpected(fd.error()));
    if (!read) {
        spdlog::info("git's index is not used: {}", read.error().message);
        return {};
    }
    auto index = parse(bytes, to_ns(st->st_mtim));
    if (!index) {
        spdlog::info("git's index is not used: {}", index.error().message);
        return {};
    }
    spdlog::info("git's index vouches for up to {} files", index->size());
    return std::move(*index);
}

std::optional<GitBlobId> GitIndex::vouch(const std::string& path, const struct stat& st) const {
    auto it = m_entries.find(path);
    if (it == m_entries.end() || !S_ISREG(st.st_mode)) {
        return std::nullopt;
    }
    const Entry& e = it->second;
    bool same = e.size == static_cast<std::uint32_t>(st.st_size) &&
                e.mtime_s == static_cast<std::uint32_t>(st.st_mtim.tv_sec) &&
                e.mtime_ns == static_cast<std::uint32_t>(st.st_mtim.tv_nsec) &&
                e.ctime_s == static_cast<std::uint32_t>(st.st_ctim.tv_sec) &&
                e.ctime_ns == static_cast<std::uint32_t>(st.st_ctim.tv_nsec) &&
                e.ino == static_cast<std::uint32_t>(st.st_ino) && e.uid == st.st_uid &&
                e.gid == st.st_gid && (e.mode & 0100) == (st.st_mode & 0100);
    // Written in the same instant as the index, or after it: git would read it again.
    bool racy = to_ns(st.st_mtim) >= m_index_mtime;
    if (!same || racy) {
        return std::nullopt;
    }
    return e.blob;
}

}  // namespace fbfs
