#include "store/meta/volume_digest.h"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/meta/snapshot_tables.h"

namespace fbfs {

namespace {

// Feeds a hasher with length-prefixed fields, so no two different trees hash the same bytes.
class DigestWriter {
public:
    void tag(char t) { m_hash.update(&t, 1); }
    void number(std::uint64_t n) {
        std::uint8_t bytes[8];
        for (int i = 0; i < 8; ++i) {
            bytes[i] = static_cast<std::uint8_t>(n >> (8 * i));
        }
        m_hash.update(bytes, sizeof bytes);
    }
    void text(std::string_view s) {
        number(s.size());
        m_hash.update(s.data(), s.size());
    }
    ObjectId finish() { return m_hash.finish(); }

private:
    Sha256 m_hash;
};

using XattrRange = std::pair<const SnapshotXattr*, const SnapshotXattr*>;

// An inode's attributes follow its fields, under a tag of their own, only when it has some: a
// volume without attributes keeps the digest it had before attributes were hashed.
void write_inode(DigestWriter& out, const InodeRecord& r, XattrRange xattrs = {}) {
    out.number(r.mode);
    out.number(r.uid);
    out.number(r.gid);
    out.number(r.size);
    out.number(r.rdev);
    out.number(r.flags & InodeRecord::k_opaque);
    out.text(r.object ? r.object->raw() : std::string_view{});
    out.text(r.symlink_target);
    if (xattrs.first != xattrs.second) {
        out.tag('X');
        out.number(static_cast<std::uint64_t>(xattrs.second - xattrs.first));
        for (const auto* x = xattrs.first; x != xattrs.second; ++x) {  // in name order
            out.text(x->xattr.name);
            out.text(x->xattr.value);
        }
    }
}

class TreeDigest {
public:
    explicit TreeDigest(const VolumeSnapshot& s) : m_snapshot(s) {
        for (std::size_t i = 0; i < s.entries.size(); ++i) {
            m_children[s.entries[i].parent].push_back(i);
        }
        for (const auto& x : s.xattrs) {  // in (inode, name) order
            auto& range = m_xattrs[x.ino];
            range.first = range.first ? range.first : &x;
            range.second = &x + 1;
        }
    }

    ObjectId run() {
        auto root = m_snapshot.inodes.find(k_root_inode);
        m_out.tag('R');
        if (root != m_snapshot.inodes.end()) {
            write_inode(m_out, root->second, xattrs_of(k_root_inode));
        }
        m_first_path[k_root_inode] = "";
        walk(k_root_inode, "");
        return m_out.finish();
    }

private:
    // Entries come in (parent, name) order, so each directory's children are already sorted.
    void walk(InodeNumber dir, const std::string& dir_path) {
        auto children = m_children.find(dir);
        if (children == m_children.end()) {
            return;
        }
        for (std::size_t i : children->second) {
            const auto& entry = m_snapshot.entries[i];
            std::string path = dir_path + "/" + entry.name;
            m_out.tag('E');
            m_out.text(path);
            m_out.number(entry.value.type);
            if (entry.value.is_whiteout()) {
                continue;
            }
            auto [seen, first] = m_first_path.try_emplace(entry.value.ino, path);
            if (!first) {
                m_out.tag('L');  // another name of an inode already hashed
                m_out.text(seen->second);
                continue;
            }
            auto record = m_snapshot.inodes.find(entry.value.ino);
            if (record == m_snapshot.inodes.end()) {
                m_out.tag('?');
                continue;
            }
            write_inode(m_out, record->second, xattrs_of(entry.value.ino));
            if (record->second.is_dir()) {
                walk(entry.value.ino, path);
            }
        }
    }

    XattrRange xattrs_of(InodeNumber ino) const {
        auto found = m_xattrs.find(ino);
        return found == m_xattrs.end() ? XattrRange{} : found->second;
    }

    const VolumeSnapshot& m_snapshot;
    DigestWriter m_out;
    std::unordered_map<InodeNumber, XattrRange> m_xattrs;  // each inode's run of s.xattrs
    std::unordered_map<InodeNumber, std::vector<std::size_t>> m_children;
    std::unordered_map<InodeNumber, std::string> m_first_path;
};

}  // namespace

ObjectId content_digest(const VolumeSnapshot& snapshot) {
    return TreeDigest(snapshot).run();
}

Result<ObjectId> store_content_digest(const Store& store, std::string_view only_volume) {
    TRY_ASSIGN(auto volumes, store.volumes());
    DigestWriter out;
    bool found = only_volume.empty();
    auto read = store.env().read([&](LmdbTxn& txn) -> Result<void> {
        for (const auto& volume : volumes) {  // in name order: LMDB's key order
            if (!only_volume.empty() && volume.name != only_volume) {
                continue;
            }
            TRY_ASSIGN(auto snapshot, read_snapshot(txn, store.tables(), volume.name));
            found = true;
            out.text(volume.name);
            out.text(content_digest(snapshot).raw());
        }
        return {};
    });
    TRY(read);
    if (!found) {
        return make_error(ENOENT, fmt::format("the store {} has no volume {}",
                                              store.root().string(), only_volume));
    }
    return out.finish();
}

}  // namespace fbfs
