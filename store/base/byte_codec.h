// ByteWriter and ByteReader: fixed-width integers and byte strings in and out of a buffer, so the
// encodings of the store's records (schema.cpp) and of packs (pack_format.cpp) read one line each.
// Little-endian with le(), big-endian with be(). A ByteReader never reads past its input: a short
// read returns false and leaves the value unset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace fbfs {

class ByteWriter {
public:
    template <class T>
    ByteWriter& le(T value) {
        auto u = static_cast<std::make_unsigned_t<T>>(value);
        for (std::size_t i = 0; i < sizeof(T); ++i) {
            m_out.push_back(static_cast<char>(u >> (8 * i) & 0xff));
        }
        return *this;
    }
    template <class T>
    ByteWriter& be(T value) {
        auto u = static_cast<std::make_unsigned_t<T>>(value);
        for (std::size_t i = sizeof(T); i-- > 0;) {
            m_out.push_back(static_cast<char>(u >> (8 * i) & 0xff));
        }
        return *this;
    }
    ByteWriter& bytes(std::string_view s) {
        m_out.append(s);
        return *this;
    }
    std::string take() { return std::move(m_out); }

private:
    std::string m_out;
};

class ByteReader {
public:
    explicit ByteReader(std::string_view in) : m_in(in) {}
    template <class T>
    bool le(T& value) {
        if (m_in.size() < sizeof(T)) {
            return false;
        }
        std::make_unsigned_t<T> u = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i) {
            u = static_cast<std::make_unsigned_t<T>>(
                u | static_cast<std::uint64_t>(static_cast<unsigned char>(m_in[i])) << (8 * i));
        }
        value = static_cast<T>(u);
        m_in.remove_prefix(sizeof(T));
        return true;
    }
    bool bytes(std::size_t n, std::string_view& out) {
        if (m_in.size() < n) {
            return false;
        }
        out = m_in.substr(0, n);
        m_in.remove_prefix(n);
        return true;
    }
    std::string_view rest() const { return m_in; }

private:
    std::string_view m_in;
};

}  // namespace fbfs
