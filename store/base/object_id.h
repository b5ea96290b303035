// ObjectId: the SHA-256 of an object's bytes, and Sha256, the streaming hasher that makes one.
//
// SHA-256 comes from OpenSSL's EVP interface, which uses the CPU's SHA extensions where present.
// ObjectId is a plain value type; Sha256 is move-only and not thread-safe.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace fbfs {

class ObjectId {
public:
    static constexpr std::size_t k_size = 32;
    using Bytes = std::array<std::uint8_t, k_size>;

    ObjectId() = default;
    explicit ObjectId(const Bytes& bytes) : m_bytes(bytes) {}

    // Parses 64 lowercase or uppercase hex digits; nullopt for anything else.
    static std::optional<ObjectId> parse(std::string_view hex);
    // The raw 32 bytes; nullopt unless exactly 32 bytes are given.
    static std::optional<ObjectId> from_raw(std::string_view raw);
    // SHA-256 of a buffer in one call.
    static ObjectId of(std::span<const std::byte> bytes);
    static ObjectId of(std::string_view bytes);

    std::string hex() const;
    std::string_view raw() const {
        return {reinterpret_cast<const char*>(m_bytes.data()), m_bytes.size()};
    }
    const Bytes& bytes() const { return m_bytes; }

    auto operator<=>(const ObjectId&) const = default;

private:
    Bytes m_bytes{};
};

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;

    void update(const void* data, std::size_t size);
    // Returns the digest; the hasher is reset and can be used again.
    ObjectId finish();

private:
    struct Ctx;
    std::unique_ptr<Ctx> m_ctx;
};

}  // namespace fbfs

template <>
struct std::hash<fbfs::ObjectId> {
    std::size_t operator()(const fbfs::ObjectId& id) const noexcept {
        std::size_t h = 0;
        for (std::size_t i = 0; i < sizeof h; ++i) {
            h = (h << 8) | id.bytes()[i];
        }
        return h;
    }
};
