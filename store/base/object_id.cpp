#include "store/base/object_id.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace fbfs {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

}  // namespace

std::optional<ObjectId> ObjectId::parse(std::string_view hex) {
    if (hex.size() != 2 * k_size) {
        return std::nullopt;
    }
    Bytes bytes{};
    for (std::size_t i = 0; i < k_size; ++i) {
        int hi = hex_value(hex[2 * i]);
        int lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return ObjectId(bytes);
}

std::optional<ObjectId> ObjectId::from_raw(std::string_view raw) {
    if (raw.size() != k_size) {
        return std::nullopt;
    }
    Bytes bytes{};
    std::copy(raw.begin(), raw.end(), bytes.begin());
    return ObjectId(bytes);
}

ObjectId ObjectId::of(std::span<const std::byte> bytes) {
    Sha256 hasher;
    hasher.update(bytes.data(), bytes.size());
    return hasher.finish();
}

ObjectId ObjectId::of(std::string_view bytes) {
    return of(std::as_bytes(std::span(bytes.data(), bytes.size())));
}

std::string ObjectId::hex() const {
    static constexpr char k_digits[] = "0123456789abcdef";
    std::string out(2 * k_size, '0');
    for (std::size_t i = 0; i < k_size; ++i) {
        out[2 * i] = k_digits[m_bytes[i] >> 4];
        out[2 * i + 1] = k_digits[m_bytes[i] & 0xf];
    }
    return out;
}

struct Sha256::Ctx {
    EVP_MD_CTX* md = nullptr;
    ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : m_ctx(std::make_unique<Ctx>()) {
    m_ctx->md = EVP_MD_CTX_new();
    // Allocation failure or a libcrypto without SHA-256 leaves nothing sensible to do.
    if (m_ctx->md == nullptr || EVP_DigestInit_ex(m_ctx->md, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("OpenSSL could not initialise SHA-256");
    }
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, std::size_t size) {
    EVP_DigestUpdate(m_ctx->md, data, size);
}

ObjectId Sha256::finish() {
    ObjectId::Bytes bytes{};
    unsigned int length = 0;
    EVP_DigestFinal_ex(m_ctx->md, bytes.data(), &length);
    EVP_DigestInit_ex(m_ctx->md, EVP_sha256(), nullptr);
    return ObjectId(bytes);
}

}  // namespace fbfs
