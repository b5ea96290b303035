#include "store/meta/reference_check.h"

#include <cstdint>
#include <map>
#include <string_view>

namespace fbfs {

namespace {

using Counts = std::map<std::string, std::uint64_t, std::less<>>;  // raw object id -> inodes

std::string key_hex(std::string_view key) {
    if (auto id = ObjectId::from_raw(key)) {
        return id->hex();
    }
    std::string out;
    for (unsigned char c : key) {
        out += fmt::format("{:02x}", c);
    }
    return out;
}

std::string inodes(std::uint64_t n) {
    return n == 1 ? "1 inode names it" : fmt::format("{} inodes name it", n);
}

// How many inodes, over every volume, name each object.
Result<Counts> count_naming_inodes(const LmdbTxn& txn, const Tables& tables) {
    Counts counts;
    Result<void> decoded;
    TRY(for_each_prefix(txn, tables.inodes, "", [&](auto, std::string_view value) {
        auto record = InodeRecord::decode(value);
        if (!record) {
            decoded = std::unexpected(record.error());
            return false;
        }
        if (record->object) {
            ++counts[std::string(record->object->raw())];
        }
        return true;
    }));
    TRY(decoded);
    return counts;
}

// Compares each count in `refs` with `named`, and reports the objects named but not counted.
Result<std::vector<ReferenceProblem>> compare_counts(const LmdbTxn& txn, const Tables& tables,
                                                     Counts named) {
    std::vector<ReferenceProblem> problems;
    TRY(for_each_prefix(txn, tables.refs, "", [&](std::string_view key, std::string_view value) {
        std::uint64_t expected = 0;
        if (auto it = named.find(key); it != named.end()) {
            expected = it->second;
            named.erase(it);
        }
        auto count = decode_u64(value);
        if (!count) {
            problems.push_back({key_hex(key), "has a corrupt reference count"});
        } else if (*count != expected || *count == 0) {
            problems.push_back({key_hex(key), fmt::format("has reference count {} but {}", *count,
                                                          expected == 0 ? "no inode names it"
                                                                        : inodes(expected))});
        }
        return true;
    }));
    for (const auto& [key, count] : named) {
        problems.push_back({key_hex(key), "has no reference count but " + inodes(count)});
    }
    return problems;
}

}  // namespace

Result<std::vector<ReferenceProblem>> check_references(const Store& store) {
    std::vector<ReferenceProblem> problems;
    TRY(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        TRY_ASSIGN(auto named, count_naming_inodes(txn, store.tables()));
        TRY_ASSIGN(problems, compare_counts(txn, store.tables(), std::move(named)));
        return {};
    }));
    return problems;
}

}  // namespace fbfs
