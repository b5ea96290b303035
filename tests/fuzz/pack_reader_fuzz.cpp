// libFuzzer target for read_pack() (store/pack/pack_reader.h): any bytes, read as a pack, must give
// either a clean error or contents that keep the reader's promises — never a crash, a hang, a
// leak or a sanitizer report. Built by tests/fuzz/CMakeLists.txt with FBFS_FUZZ=ON and clang;
// run it with scripts/fuzz.
//
// Each input is read twice: as it is, and "resealed": with the digests of the header, the
// object table, the metadata, the frame table and the footer recomputed over the (mutated)
// bytes. Unkeyed SHA-256 digests stop almost every mutation at the first check; resealing lets
// mutations reach the parsers and the checks behind them, as a hostile pack would (anyone can
// recompute a digest).
//
// The pack goes through a memfd, so nothing touches the file system.

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "store/base/object_id.h"
#include "store/pack/pack_format.h"
#include "store/pack/pack_reader.h"

namespace {

[[noreturn]] void fail(const char* what, std::size_t index = 0) {
    std::fprintf(stderr, "pack_reader_fuzz: the reader broke its promise: %s (object %zu)\n", what,
                 index);
    std::abort();
}

// Takes every object's bytes and throws them away, checking that they come as pack_reader.h
// says: each wanted object's bytes in order, no more than its size, then its end, once. (The
// object calls come from the reader's cutting thread, the rest from this one, never at once.)
class DiscardSink : public fbfs::PackSink {
public:
    fbfs::Result<std::vector<bool>> begin(const fbfs::PackContents& contents) override {
        if (m_begun) {
            fail("begin() called twice");
        }
        m_begun = true;
        for (const auto& o : contents.objects) {
            m_sizes.push_back(o.size);
        }
        return std::vector<bool>(m_sizes.size(), true);
    }

    fbfs::Result<void> object_bytes(std::size_t index, std::string_view bytes) override {
        if (!m_begun || index != m_next || index >= m_sizes.size()) {
            fail("bytes for an object out of order", index);
        }
        m_got += bytes.size();
        if (m_got > m_sizes[index]) {
            fail("more bytes than the object's size", index);
        }
        return {};
    }

    fbfs::Result<void> object_end(std::size_t index) override {
        if (!m_begun || index != m_next || index >= m_sizes.size()) {
            fail("the end of an object out of order", index);
        }
        if (m_got != m_sizes[index]) {
            fail("the end of an object before all its bytes", index);
        }
        ++m_next;
        m_got = 0;
        return {};
    }

    // After read_pack() succeeded: every object arrived whole.
    void check_complete() const {
        if (!m_begun) {
            fail("success without begin()");
        }
        if (m_next != m_sizes.size()) {
            fail("success before every object arrived", m_next);
        }
    }

private:
    bool m_begun = false;
    std::vector<std::uint64_t> m_sizes;
    std::size_t m_next = 0;
    std::uint64_t m_got = 0;
};

// One memfd for the whole run, refilled for each input.
int pack_fd() {
    static int fd = [] {
        int made = ::memfd_create("fbfs-pack-fuzz", MFD_CLOEXEC);
        if (made < 0) {
            std::perror("memfd_create");
            std::abort();
        }
        return made;
    }();
    return fd;
}

void read_one(std::string_view bytes) {
    int fd = pack_fd();
    if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) {
        std::perror("resetting the memfd");
        std::abort();
    }
    for (std::string_view left = bytes; !left.empty();) {
        ssize_t n = ::write(fd, left.data(), left.size());
        if (n <= 0) {
            std::perror("writing the memfd");
            std::abort();
        }
        left.remove_prefix(static_cast<std::size_t>(n));
    }
    if (::lseek(fd, 0, SEEK_SET) != 0) {
        std::perror("lseek");
        std::abort();
    }
    DiscardSink sink;
    std::uint64_t reported = 0;
    auto read = fbfs::read_pack(fd, sink, [&](const fbfs::Progress& p) {
        if (p.bytes_done < reported) {
            fail("progress went backwards");
        }
        reported = p.bytes_done;
        return true;
    });
    if (read) {
        sink.check_complete();
        if (read->packed_bytes != bytes.size()) {
            fail("success with a pack length that is not the input's");
        }
    } else if (read.error().message.empty()) {
        fail("an error without a message");
    }
}

std::uint64_t le64(std::string_view bytes, std::size_t at) {
    std::uint64_t value = 0;
    for (std::size_t i = 8; i-- > 0;) {
        value = value << 8 | static_cast<unsigned char>(bytes[at + i]);
    }
    return value;
}

void put_digest(std::string& pack, std::size_t at, std::string_view a, std::string_view b = {}) {
    fbfs::Sha256 sha;
    sha.update(a.data(), a.size());
    sha.update(b.data(), b.size());
    fbfs::ObjectId digest = sha.finish();
    pack.replace(at, fbfs::ObjectId::k_size, digest.raw());
}

// Reseals the section starting at `at`; returns where it ends, or npos if it does not fit.
std::size_t reseal_section(std::string& pack, std::size_t at) {
    namespace p = fbfs::pack;
    if (at > pack.size() || pack.size() - at < p::k_section_header_size) {
        return std::string::npos;
    }
    std::uint64_t stored = le64(pack, at + 8);
    if (stored > pack.size() - at - p::k_section_header_size) {
        return std::string::npos;
    }
    std::string_view view(pack);
    put_digest(pack, at + 24, view.substr(at, 24),
               view.substr(at + p::k_section_header_size, static_cast<std::size_t>(stored)));
    return at + p::k_section_header_size + static_cast<std::size_t>(stored);
}

// The input with every digest but the frames' recomputed (see the top of this file).
std::string reseal(std::string_view bytes) {
    namespace p = fbfs::pack;
    std::string pack(bytes);
    if (pack.size() < p::k_header_size) {
        return pack;
    }
    put_digest(pack, 16, std::string_view(pack).substr(0, 16));
    std::size_t at = reseal_section(pack, p::k_header_size);  // the object table
    if (at != std::string::npos) {
        reseal_section(pack, at);  // the metadata
    }
    if (pack.size() >= p::k_header_size + p::k_footer_size) {
        std::size_t footer = pack.size() - p::k_footer_size;
        std::uint64_t frame_table = le64(pack, footer + 24);
        if (frame_table >= p::k_header_size && frame_table < footer) {
            reseal_section(pack, static_cast<std::size_t>(frame_table));
        }
        put_digest(pack, footer + 40, std::string_view(pack).substr(footer, 40));
    }
    return pack;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view bytes(reinterpret_cast<const char*>(data), size);
    read_one(bytes);
    std::string resealed = reseal(bytes);
    if (resealed != bytes) {
        read_one(resealed);
    }
    return 0;
}
