#include "store/meta/volume_tree.h"

#include <dirent.h>
#include <linux/fs.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "store/meta/volume_times.h"

namespace fbfs {

namespace {

constexpr InodeNumber k_inode_batch = 1024;

std::uint8_t dirent_type(std::uint32_t mode) {
    return static_cast<std::uint8_t>(IFTODT(mode));
}

// The extended attributes of `ino`, in name order.
Result<std::vector<Xattr>> read_xattrs(const LmdbTxn& txn, const Tables& t, VolumeId volume,
                                       InodeNumber ino) {
    std::vector<Xattr> out;
    std::string prefix = inode_key(volume, ino);
    auto walked = for_each_prefix(txn, t.xattrs, prefix, [&](auto key, auto value) {
        out.push_back({std::string(key.substr(prefix.size())), std::string(value)});
        return true;
    });
    TRY(walked);
    return out;
}

// An inode whose attributes are full is ENOSPC to the caller, but inside a write transaction it
// travels under this code: LmdbEnv::write takes ENOSPC from a transaction for a full disk.
constexpr int k_xattrs_full = -ENOSPC;

Result<void> xattrs_full_is_enospc(Result<void> outcome) {
    if (!outcome && outcome.error().code == k_xattrs_full) {
        outcome.error().code = ENOSPC;
    }
    return outcome;
}

// EINVAL unless every name is one a volume stores; EPERM for a `user.` name on an inode that
// is no regular file or directory; k_xattrs_full unless all of them fit one inode.
Result<void> check_xattrs_fit(const InodeRecord& record, const std::vector<Xattr>& xattrs) {
    std::size_t used = 0;
    for (const auto& x : xattrs) {
        if (!is_stored_xattr_name(x.name)) {
            return make_error(EINVAL, fmt::format("'{}' is no attribute name fbfs stores",
                                                  x.name.substr(0, x.name.find('\0'))));
        }
        if (is_user_xattr_name(x.name) && !record.is_reg() && !record.is_dir()) {
            return make_error(EPERM, fmt::format("'{}': user attributes are only for regular "
                                                 "files and directories",
                                                 x.name));
        }
        used += xattr_cost(x.name, x.value.size());
    }
    if (used > k_xattr_space) {
        return make_error(k_xattrs_full,
                          fmt::format("the attributes would take {} bytes, more than the "
                                      "{} an inode holds",
                                      used, k_xattr_space));
    }
    return {};
}

// The working set of one write transaction: inode records read once, changed in memory, and
// written (or deleted) together by flush(), so a rename within one directory touches it once.
class TreeTxn {
public:
    TreeTxn(LmdbTxn& txn, const Tables& tables, VolumeId volume)
        : m_txn(txn), m_t(tables), m_vol(volume) {}

    // The record of `ino`; ENOENT if there is none (the kernel asked about a stale inode).
    Result<InodeRecord*> inode(InodeNumber ino) {
        if (auto it = m_inodes.find(ino); it != m_inodes.end()) {
            if (!it->second) {
                return make_error(ENOENT, fmt::format("inode {} was deleted", ino));
            }
            return &*it->second;
        }
        TRY_ASSIGN(auto raw, m_txn.get(m_t.inodes, inode_key(m_vol, ino)));
        if (!raw) {
            return make_error(ENOENT, fmt::format("inode {} does not exist", ino));
        }
        TRY_ASSIGN(auto record, InodeRecord::decode(*raw));
        m_original_objects[ino] = record.object;
        return &*(m_inodes[ino] = std::move(record));
    }

    // A directory's record; ENOTDIR if `ino` is something else.
    Result<InodeRecord*> dir(InodeNumber ino) {
        auto rec = inode(ino);
        if (rec && !(*rec)->is_dir()) {
            return make_error(ENOTDIR, fmt::format("inode {} is not a directory", ino));
        }
        return rec;
    }

    void add_inode(InodeNumber ino, InodeRecord record) {
        m_original_objects[ino] = std::nullopt;
        m_inodes[ino] = std::move(record);
    }
    void delete_inode(InodeNumber ino) { m_inodes[ino] = std::nullopt; }

    Result<std::optional<DirentValue>> entry(InodeNumber parent, std::string_view name) {
        TRY_ASSIGN(auto raw, m_txn.get(m_t.dirents, dirent_key(m_vol, parent, name)));
        if (!raw) {
            return std::optional<DirentValue>();
        }
        TRY_ASSIGN(auto value, DirentValue::decode(*raw));
        return std::optional<DirentValue>(value);
    }
    // Like entry(), but ENOENT for a missing entry or a whiteout.
    Result<DirentValue> existing(InodeNumber parent, std::string_view name) {
        TRY_ASSIGN(auto value, entry(parent, name));
        if (!value || value->is_whiteout()) {
            return make_error(ENOENT, fmt::format("no entry '{}' in directory {}", name, parent));
        }
        return *value;
    }
    Result<void> put_entry(InodeNumber parent, std::string_view name, DirentValue value) {
        return m_txn.put(m_t.dirents, dirent_key(m_vol, parent, name), value.encode());
    }
    Result<void> del_entry(InodeNumber parent, std::string_view name) {
        TRY(m_txn.del(m_t.dirents, dirent_key(m_vol, parent, name)));
        return {};
    }

    Result<std::vector<Xattr>> xattrs(InodeNumber ino) const {
        return read_xattrs(m_txn, m_t, m_vol, ino);
    }
    // Writes `xattrs` as all of a new inode's attributes.
    Result<void> add_xattrs(InodeNumber ino, const std::vector<Xattr>& xattrs) {
        TRY_ASSIGN(auto rec, inode(ino));
        TRY(check_xattrs_fit(*rec, xattrs));
        for (const auto& x : xattrs) {
            TRY(m_txn.put(m_t.xattrs, xattr_key(m_vol, ino, x.name), x.value));
        }
        return {};
    }
    // Sets one attribute of an existing inode, as setxattr(2) with `mode`.
    Result<void> put_xattr(InodeNumber ino, std::string_view name, std::string_view value,
                           XattrMode mode) {
        TRY_ASSIGN(auto rec, inode(ino));
        TRY_ASSIGN(auto all, xattrs(ino));
        auto same = std::find_if(all.begin(), all.end(), [&](auto& x) { return x.name == name; });
        if (mode == XattrMode::create && same != all.end()) {
            return make_error(EEXIST, fmt::format("inode {} has attribute '{}'", ino, name));
        }
        if (mode == XattrMode::replace && same == all.end()) {
            return make_error(ENODATA, fmt::format("inode {} has no attribute '{}'", ino, name));
        }
        if (same == all.end()) {
            same = all.insert(all.end(), Xattr{std::string(name), {}});
        }
        same->value = std::string(value);
        TRY(check_xattrs_fit(*rec, all));
        return m_txn.put(m_t.xattrs, xattr_key(m_vol, ino, name), value);
    }
    Result<void> del_xattr(InodeNumber ino, std::string_view name) {
        TRY_ASSIGN(auto gone, m_txn.del(m_t.xattrs, xattr_key(m_vol, ino, name)));
        if (!gone) {
            return make_error(ENODATA, fmt::format("inode {} has no attribute '{}'", ino, name));
        }
        return {};
    }

    // Entries of `dir` other than whiteouts: ENOTEMPTY if any. Whiteouts are deleted with it.
    Result<void> remove_empty_dir_entries(InodeNumber dir) {
        std::vector<std::string> whiteouts;
        bool empty = true;
        auto walked = for_each_prefix(m_txn, m_t.dirents, dirent_prefix(m_vol, dir),
                                      [&](std::string_view key, std::string_view value) {
                                          auto v = DirentValue::decode(value);
                                          if (v && v->is_whiteout()) {
                                              whiteouts.emplace_back(key);
                                              return true;
                                          }
                                          empty = false;
                                          return false;
                                      });
        if (!walked) {
            return walked;
        }
        if (!empty) {
            return make_error(ENOTEMPTY, fmt::format("directory {} is not empty", dir));
        }
        for (const auto& key : whiteouts) {
            TRY(m_txn.del(m_t.dirents, key));
        }
        return {};
    }

    // Drops one link of `ino` (already removed from its directory). A directory loses all links.
    // With no links left the inode is an orphan if `keep_open`, else deleted.
    Result<Unlinked> unlink_inode(InodeNumber ino, bool keep_open, TimeNs now) {
        TRY_ASSIGN(auto rec, inode(ino));
        InodeRecord& r = *rec;
        if (r.is_dir()) {
            TRY(remove_empty_dir_entries(ino));
            r.nlink = 0;
        } else if (r.nlink > 0) {
            --r.nlink;
        }
        r.ctime = now;
        Unlinked out{ino, r};
        if (r.nlink == 0) {
            TRY(keep_open ? m_txn.put(m_t.orphans, inode_key(m_vol, ino), "") : Result<void>());
            if (!keep_open) {
                delete_inode(ino);
            }
        }
        return out;
    }

    // Writes every changed record and moves object references along with changed content.
    Result<void> flush() {
        for (auto& [ino, record] : m_inodes) {
            const auto& before = m_original_objects[ino];
            const std::optional<ObjectId> after = record ? record->object : std::nullopt;
            if (before != after) {
                TRY(adjust_ref(before, -1));
                TRY(adjust_ref(after, +1));
            }
            auto written = record ? m_txn.put(m_t.inodes, inode_key(m_vol, ino), record->encode())
                                  : delete_record(ino);
            if (!written) {
                return written;
            }
        }
        return {};
    }

private:
    // The inode's record, its orphan mark and its extended attributes.
    Result<void> delete_record(InodeNumber ino) {
        TRY(m_txn.del(m_t.inodes, inode_key(m_vol, ino)));
        TRY(m_txn.del(m_t.orphans, inode_key(m_vol, ino)));
        TRY_ASSIGN(auto attributes, xattrs(ino));
        for (const auto& x : attributes) {
            TRY(m_txn.del(m_t.xattrs, xattr_key(m_vol, ino, x.name)));
        }
        return {};
    }

    Result<void> adjust_ref(const std::optional<ObjectId>& id, int delta) {
        return id ? adjust_object_ref(m_txn, m_t, *id, delta) : Result<void>();
    }

    LmdbTxn& m_txn;
    const Tables& m_t;
    VolumeId m_vol;
    std::map<InodeNumber, std::optional<InodeRecord>> m_inodes;  // nullopt: deleted
    std::map<InodeNumber, std::optional<ObjectId>> m_original_objects;
};

void touch(InodeRecord& record, TimeNs now) {
    record.mtime = record.ctime = now;
}

// Inside the write transaction that is about to name object `id`: puts the sealed file holding
// its bytes into the pool unless the pool has it, so the object exists before anything names it.
// `published` records that this transaction's attempt put it there (LmdbEnv::write may run the
// body again).
Result<void> publish_if_missing(const ObjectPool& pool, const ObjectId& id, std::uint64_t size,
                                const std::filesystem::path& sealed, bool& published) {
    if (published || pool.contains(id)) {
        return {};
    }
    TRY_ASSIGN(auto put, pool.publish(sealed, id, size));
    published = !put.deduped;
    return {};
}

// After the transaction that would have named a published object failed: nothing names it, so
// it goes again. Returns the error to report (the original one, unless cleaning up failed too).
Error unpublish(Store& store, bool published, const std::optional<ObjectId>& id, Error error) {
    if (published && id) {
        if (auto removed = store.remove_if_unreferenced(*id); !removed) {
            return removed.error();
        }
    }
    return error;
}

// The two ends of a rename, as its transaction found them.
struct RenameEnds {
    InodeNumber parent;
    std::string_view name;
    InodeRecord* from_dir;
    InodeNumber new_parent;
    std::string_view new_name;
    InodeRecord* to_dir;             // the same record as from_dir within one directory
    DirentValue src;                 // the entry that moves
    std::optional<DirentValue> dst;  // the entry at the target, if any (a whiteout is none)
};

// Reads both directories, the entry to move (ENOENT if missing) and the target's entry.
Result<RenameEnds> rename_ends(TreeTxn& tree, InodeNumber parent, std::string_view name,
                               InodeNumber new_parent, std::string_view new_name) {
    TRY_ASSIGN(auto from_dir, tree.dir(parent));
    TRY_ASSIGN(auto to_dir, tree.dir(new_parent));
    TRY_ASSIGN(auto src, tree.existing(parent, name));
    TRY_ASSIGN(auto dst, tree.entry(new_parent, new_name));
    if (dst && dst->is_whiteout()) {
        dst.reset();
    }
    return RenameEnds{parent, name, from_dir, new_parent, new_name, to_dir, src, dst};
}

// RENAME_EXCHANGE: the two entries swap inodes; a directory that changes parent moves one link
// of `..` with it.
Result<void> exchange_entries(TreeTxn& tree, RenameEnds& ends, TimeNs now,
                              const VolumeTree::RenameOverlay& overlay) {
    if (!ends.dst) {
        return make_error(ENOENT, fmt::format("no entry '{}' to exchange", ends.new_name));
    }
    bool src_dir = ends.src.type == DT_DIR;
    bool dst_dir = ends.dst->type == DT_DIR;
    if (src_dir != dst_dir && ends.parent != ends.new_parent) {
        ends.from_dir->nlink += src_dir ? -1u : 1u;
        ends.to_dir->nlink += src_dir ? 1u : -1u;
    }
    TRY_ASSIGN(auto a, tree.inode(ends.src.ino));
    TRY_ASSIGN(auto b, tree.inode(ends.dst->ino));
    a->ctime = b->ctime = now;
    if (overlay.opaque) {
        a->flags |= InodeRecord::k_opaque;
    }
    touch(*ends.from_dir, now);
    touch(*ends.to_dir, now);
    TRY(tree.put_entry(ends.parent, ends.name, *ends.dst));
    TRY(tree.put_entry(ends.new_parent, ends.new_name, ends.src));
    return tree.flush();
}

// Whether the entry at the target may be replaced: not with RENAME_NOREPLACE, and a directory
// only by a directory (ENOTDIR, EISDIR as rename(2)).
Result<void> check_replaceable(const RenameEnds& ends, unsigned flags) {
    if (flags & RENAME_NOREPLACE) {
        return make_error(EEXIST, fmt::format("'{}' exists", ends.new_name));
    }
    if (ends.dst->ino == ends.src.ino) {
        return {};
    }
    bool src_dir = ends.src.type == DT_DIR;
    bool dst_dir = ends.dst->type == DT_DIR;
    if (src_dir && !dst_dir) {
        return make_error(ENOTDIR, fmt::format("'{}' is not a directory", ends.new_name));
    }
    if (!src_dir && dst_dir) {
        return make_error(EISDIR, fmt::format("'{}' is a directory", ends.new_name));
    }
    return {};
}

// The inode at the target loses that name (an orphan if `keep_open`, as remove() does).
Result<Unlinked> unlink_target(TreeTxn& tree, RenameEnds& ends, bool keep_open, TimeNs now) {
    TRY_ASSIGN(auto unlinked, tree.unlink_inode(ends.dst->ino, keep_open, now));
    if (ends.dst->type == DT_DIR) {
        --ends.to_dir->nlink;
    }
    return unlinked;
}

// Moves the entry to its new name; a directory that changes parent takes a link along. In an
// overlay, a whiteout may take the old name and the moved directory may turn opaque.
Result<void> move_entry(TreeTxn& tree, RenameEnds& ends, TimeNs now,
                        const VolumeTree::RenameOverlay& overlay) {
    if (ends.src.type == DT_DIR && ends.parent != ends.new_parent) {
        --ends.from_dir->nlink;
        ++ends.to_dir->nlink;
    }
    TRY_ASSIGN(auto moved, tree.inode(ends.src.ino));
    moved->ctime = now;
    if (overlay.opaque) {
        moved->flags |= InodeRecord::k_opaque;
    }
    touch(*ends.from_dir, now);
    touch(*ends.to_dir, now);
    if (overlay.whiteout_source) {
        TRY(tree.put_entry(ends.parent, ends.name, {0, DT_WHT}));
    } else {
        TRY(tree.del_entry(ends.parent, ends.name));
    }
    TRY(tree.put_entry(ends.new_parent, ends.new_name, ends.src));
    return tree.flush();
}

// In one write transaction: applies `change` to the attributes of `ino` and moves its ctime, as
// every change of an attribute does on ext4. Returns the record as written.
template <class Change>
Result<InodeRecord> change_inode_xattrs(Store& store, VolumeId volume, InodeNumber ino,
                                        const Change& change) {
    InodeRecord out;
    TimeNs now = now_ns();
    auto ok = xattrs_full_is_enospc(store.env().write([&](LmdbTxn& txn) -> Result<void> {
        TreeTxn tree(txn, store.tables(), volume);
        TRY_ASSIGN(auto rec, tree.inode(ino));
        TRY(change(tree));
        rec->ctime = now;
        out = *rec;
        return tree.flush();
    }));
    TRY(ok);
    return out;
}

}  // namespace

Result<VolumeTree> VolumeTree::open(Store& store, std::string_view name, std::uint32_t uid,
                                    std::uint32_t gid) {
    TRY(check_volume_name(name));
    const Tables& t = store.tables();
    VolumeId id = 0;
    auto ok = store.env().write([&](LmdbTxn& txn) -> Result<void> {
        TRY_ASSIGN(auto existing, txn.get(t.volumes, name));
        if (existing) {
            TRY_ASSIGN(auto record, VolumeRecord::decode(*existing));
            id = record.id;
            return {};
        }
        TRY_ASSIGN(auto unused, unused_volume_id(txn, t));
        id = unused;
        InodeRecord root;
        root.mode = S_IFDIR | 0755;
        root.uid = uid;
        root.gid = gid;
        root.nlink = 2;
        root.atime = root.mtime = root.ctime = now_ns();
        TRY(txn.put(t.inodes, inode_key(id, k_root_inode), root.encode()));
        TRY(note_volume_created(txn, t, id, root.ctime));
        return txn.put(t.volumes, name, VolumeRecord{id, k_root_inode + 1}.encode());
    });
    TRY(ok);
    return VolumeTree(store, std::string(name), id);
}

VolumeTree::VolumeTree(VolumeTree&& other) noexcept
    : m_store(other.m_store),
      m_name(std::move(other.m_name)),
      m_id(other.m_id),
      m_next_inode(other.m_next_inode),
      m_inode_limit(other.m_inode_limit) {}

Result<InodeNumber> VolumeTree::allocate_inode() {
    LockGuard lock(m_alloc_mutex);
    if (m_next_inode == m_inode_limit) {
        const Tables& t = m_store->tables();
        auto ok = m_store->env().write([&](LmdbTxn& txn) REQUIRES(m_alloc_mutex) -> Result<void> {
            TRY_ASSIGN(auto raw, txn.get(t.volumes, m_name));
            if (!raw) {
                return make_error(ENOENT, fmt::format("volume '{}' was removed", m_name));
            }
            TRY_ASSIGN(auto record, VolumeRecord::decode(*raw));
            m_next_inode = record.next_inode;
            record.next_inode += k_inode_batch;
            m_inode_limit = record.next_inode;
            return txn.put(t.volumes, m_name, record.encode());
        });
        if (!ok) {
            m_next_inode = m_inode_limit = 0;
            return std::unexpected(ok.error());
        }
    }
    return m_next_inode++;
}

Result<std::optional<InodeRecord>> VolumeTree::get(InodeNumber ino) const {
    std::optional<InodeRecord> out;
    auto ok = m_store->env().read([&](LmdbTxn& txn) -> Result<void> {
        TRY_ASSIGN(auto raw, txn.get(m_store->tables().inodes, inode_key(m_id, ino)));
        if (raw) {
            TRY_ASSIGN(auto record, InodeRecord::decode(*raw));
            out = std::move(record);
        }
        return {};
    });
    TRY(ok);
    return out;
}

Result<std::optional<DirentValue>> VolumeTree::lookup(InodeNumber parent,
                                                      std::string_view name) const {
    Result<std::optional<DirentValue>> out;
    auto ok = m_store->env().read([&](LmdbTxn& txn) -> Result<void> {
        TreeTxn tree(txn, m_store->tables(), m_id);
        out = tree.entry(parent, name);
        return {};
    });
    TRY(ok);
    return out;
}

Result<std::vector<NamedEntry>> VolumeTree::list(InodeNumber dir) const {
    std::vector<NamedEntry> out;
    auto prefix = dirent_prefix(m_id, dir);
    Result<void> decoded;
    auto ok = m_store->env().read([&](LmdbTxn& txn) -> Result<void> {
        return for_each_prefix(txn, m_store->tables().dirents, prefix,
                               [&](std::string_view key, std::string_view value) {
                                   auto v = DirentValue::decode(value);
                                   if (!v) {
                                       decoded = std::unexpected(v.error());
                                       return false;
                                   }
                                   out.push_back({std::string(key.substr(prefix.size())), *v});
                                   return true;
                               });
    });
    TRY(ok);
    TRY(decoded);
    return out;
}

Result<NewInode> VolumeTree::create(InodeNumber parent, std::string_view name, InodeRecord record,
                                    const CreateOptions& options) {
    TRY_ASSIGN(auto ino, options.ino ? Result<InodeNumber>(*options.ino) : allocate_inode());
    TimeNs now = now_ns();
    record.nlink = record.is_dir() ? 2 : 1;
    const ObjectPool& pool = m_store->pool();
    bool published = false;
    auto ok = xattrs_full_is_enospc(m_store->env().write([&](LmdbTxn& txn) -> Result<void> {
        TreeTxn tree(txn, m_store->tables(), m_id);
        TRY_ASSIGN(auto dir, tree.dir(parent));
        TRY_ASSIGN(auto present, tree.entry(parent, name));
        if (present && !present->is_whiteout()) {
            return make_error(EEXIST, fmt::format("'{}' exists", name));
        }
        if (options.ino) {
            TRY_ASSIGN(auto taken, txn.get(m_store->tables().inodes, inode_key(m_id, ino)));
            if (taken) {
                return make_error(EEXIST, fmt::format("inode {} is taken", ino));
            }
        }
        if (record.object && !options.sealed.empty()) {
            TRY(publish_if_missing(pool, *record.object, record.size, options.sealed, published));
        }
        if (options.touch_parent) {
            touch(*dir, now);
        }
        if (record.is_dir()) {
            ++dir->nlink;
        }
        tree.add_inode(ino, record);
        TRY(tree.put_entry(parent, name, {ino, dirent_type(record.mode)}));
        TRY(tree.add_xattrs(ino, options.xattrs));
        return tree.flush();
    }));
    if (!ok) {
        return std::unexpected(unpublish(*m_store, published, record.object, ok.error()));
    }
    if (!options.sealed.empty()) {
        ::unlink(options.sealed.c_str());
    }
    return NewInode{ino, std::move(record)};
}

Result<std::optional<std::string>> VolumeTree::xattr(InodeNumber ino, std::string_view name) const {
    std::optional<std::string> out;
    auto ok = m_store->env().read([&](LmdbTxn& txn) -> Result<void> {
        const Tables& t = m_store->tables();
        TRY_ASSIGN(auto value, txn.get(t.xattrs, xattr_key(m_id, ino, name)));
        if (!value) {
            // No value: the inode may be gone too, which is another answer.
            TRY_ASSIGN(auto record, txn.get(t.inodes, inode_key(m_id, ino)));
            if (!record) {
                return make_error(ENOENT, fmt::format("inode {} does not exist", ino));
            }
        }
        out = std::move(value);
        return {};
    });
    TRY(ok);
    return out;
}

Result<std::vector<Xattr>> VolumeTree::xattrs(InodeNumber ino) const {
    Result<std::vector<Xattr>> out;
    auto ok = m_store->env().read([&](LmdbTxn& txn) -> Result<void> {
        TreeTxn tree(txn, m_store->tables(), m_id);
        TRY(tree.inode(ino));
        out = tree.xattrs(ino);
        return {};
    });
    TRY(ok);
    return out;
}

Result<InodeRecord> VolumeTree::set_xattr(InodeNumber ino, std::string_view name,
                                          std::string_view value, XattrMode mode) {
    return change_inode_xattrs(
        *m_store, m_id, ino, [&](TreeTxn& tree) { return tree.put_xattr(ino, name, value, mode); });
}

Result<InodeRecord> VolumeTree::remove_xattr(InodeNumber ino, std::string_view name) {
    return change_inode_xattrs(*m_store, m_id, ino,
                               [&](TreeTxn& tree) { return tree.del_xattr(ino, name); });
}

Result<std::optional<LowerStamp>> VolumeTree::stamp(std::string_view relative_path) const {
    std::optional<LowerStamp> out;
    auto ok = m_store->env().read([&](LmdbTxn& txn) -> Result<void> {
        TRY_ASSIGN(auto raw, txn.get(m_store->tables().stamps, stamp_key(m_id, relative_path)));
        if (!raw) {
            return {};
        }
        TRY_ASSIGN(auto decoded, LowerStamp::decode(*raw));
        out = decoded;
        return {};
    });
    TRY(ok);
    return out;
}

Result<void> VolumeTree::put_stamp(std::string_view relative_path, const LowerStamp& stamp) {
    return m_store->env().write([&](LmdbTxn& txn) {
        return txn.put(m_store->tables().stamps, stamp_key(m_id, relative_path), stamp.encode());
    });
}

Result<InodeRecord> VolumeTree::link(InodeNumber ino, InodeNumber parent, std::string_view name) {
    InodeRecord out;
    TimeNs now = now_ns();
    auto ok = m_store->env().write([&](LmdbTxn& txn) -> Result<void> {
        TreeTxn tree(txn, m_store->tables(), m_id);
        auto target = tree.inode(ino);
        TRY_ASSIGN(auto dir, target ? tree.dir(parent) : target);
        if ((*target)->is_dir()) {
            return make_error(EPERM, "hard links to directories are not allowed");
        }
        TRY_ASSIGN(auto present, tree.entry(parent, name));
        if (present && !present->is_whiteout()) {
            return make_error(EEXIST, fmt::format("'{}' exists", name));
        }
        ++(*target)->nlink;
        (*target)->ctime = now;
        touch(*dir, now);
        out = **target;
        TRY(tree.put_entry(parent, name, {ino, dirent_type(out.mode)}));
        // A file linked back from the orphan state is no longer an orphan.
        TRY(txn.del(m_store->tables().orphans, inode_key(m_id, ino)));
        return tree.flush();
    });
    TRY(ok);
    return out;
}

Result<Unlinked> VolumeTree::remove(InodeNumber parent, std::string_view name, bool dir,
                                    bool leave_whiteout, bool keep_open) {
    Unlinked out;
    TimeNs now = now_ns();
    auto ok = m_store->env().write([&](LmdbTxn& txn) -> Result<void> {
        TreeTxn tree(txn, m_store->tables(), m_id);
        TRY_ASSIGN(auto parent_rec, tree.dir(parent));
        TRY_ASSIGN(auto entry, tree.existing(parent, name));
        bool is_dir = entry.type == DT_DIR;
        if (dir != is_dir) {
            return make_error(dir ? ENOTDIR : EISDIR,
                              fmt::format("'{}' is {}a directory", name, is_dir ? "" : "not "));
        }
        TRY_ASSIGN(auto unlinked, tree.unlink_inode(entry.ino, keep_open, now));
        out = unlinked;
        touch(*parent_rec, now);
        if (is_dir) {
            --parent_rec->nlink;
        }
        auto changed = leave_whiteout ? tree.put_entry(parent, name, {0, DT_WHT})
                                      : tree.del_entry(parent, name);
        return changed ? tree.flush() : changed;
    });
    TRY(ok);
    return out;
}

Result<void> VolumeTree::add_whiteout(InodeNumber parent, std::string_view name) {
    TimeNs now = now_ns();
    return m_store->env().write([&](LmdbTxn& txn) -> Result<void> {
        TreeTxn tree(txn, m_store->tables(), m_id);
        TRY_ASSIGN(auto parent_rec, tree.dir(parent));
        TRY_ASSIGN(auto present, tree.entry(parent, name));
        if (present && !present->is_whiteout()) {
            return make_error(EEXIST, fmt::format("'{}' exists", name));
        }
        touch(*parent_rec, now);
        auto put = tree.put_entry(parent, name, {0, DT_WHT});
        return put ? tree.flush() : put;
    });
}

Result<std::optional<Unlinked>> VolumeTree::rename(
    InodeNumber parent, std::string_view name, InodeNumber new_parent, std::string_view new_name,
    unsigned flags, const std::function<bool(InodeNumber)>& keep_open,
    const RenameOverlay& overlay) {
    std::optional<Unlinked> replaced;
    TimeNs now = now_ns();
    TRY(m_store->env().write([&](LmdbTxn& txn) -> Result<void> {
        replaced.reset();  // write() may run this again
        TreeTxn tree(txn, m_store->tables(), m_id);
        TRY_ASSIGN(auto ends, rename_ends(tree, parent, name, new_parent, new_name));
        if (flags & RENAME_EXCHANGE) {
            return exchange_entries(tree, ends, now, overlay);
        }
        if (ends.dst) {
            TRY(check_replaceable(ends, flags));
            if (ends.dst->ino == ends.src.ino) {
                return {};  // two names of one inode: POSIX says do nothing
            }
            TRY_ASSIGN(replaced, unlink_target(tree, ends, keep_open(ends.dst->ino), now));
        }
        return move_entry(tree, ends, now, overlay);
    }));
    return replaced;
}

Result<InodeRecord> VolumeTree::update(InodeNumber ino,
                                       const std::function<Result<void>(InodeRecord&)>& change) {
    InodeRecord out;
    auto ok = m_store->env().write([&](LmdbTxn& txn) -> Result<void> {
        TreeTxn tree(txn, m_store->tables(), m_id);
        TRY_ASSIGN(auto rec, tree.inode(ino));
        TRY(change(*rec));
        out = *rec;
        return tree.flush();
    });
    TRY(ok);
    return out;
}

Result<InodeRecord> VolumeTree::set_content(InodeNumber ino, const std::optional<ObjectId>& id,
                                            std::uint64_t size, const std::filesystem::path& sealed,
                                            const std::function<void(InodeRecord&)>& change) {
    const ObjectPool& pool = m_store->pool();
    bool published = false;
    auto updated = update(ino, [&](InodeRecord& record) -> Result<void> {
        if (id) {
            TRY(publish_if_missing(pool, *id, size, sealed, published));
        }
        record.object = id;
        record.size = size;
        change(record);
        return {};
    });
    if (updated && !sealed.empty()) {
        ::unlink(sealed.c_str());  // a duplicate of an object the pool had (or already gone)
    }
    if (!updated) {
        return std::unexpected(unpublish(*m_store, published, id, updated.error()));
    }
    return updated;
}

Result<void> VolumeTree::drop(InodeNumber ino) {
    return m_store->env().write([&](LmdbTxn& txn) -> Result<void> {
        TreeTxn tree(txn, m_store->tables(), m_id);
        auto rec = tree.inode(ino);
        if (!rec) {
            return (rec.error().code == ENOENT) ? Result<void>() : std::unexpected(rec.error());
        }
        if ((*rec)->nlink != 0) {
            return {};
        }
        tree.delete_inode(ino);
        return tree.flush();
    });
}

Result<std::size_t> VolumeTree::drop_orphans() {
    std::vector<InodeNumber> orphans;
    TRY(m_store->env().read([&](LmdbTxn& txn) -> Result<void> {
        return for_each_prefix(txn, m_store->tables().orphans, volume_prefix(m_id),
                               [&](std::string_view key, std::string_view) {
                                   if (auto ino = inode_of_key(key)) {
                                       orphans.push_back(*ino);
                                   }
                                   return true;
                               });
    }));
    for (InodeNumber ino : orphans) {
        TRY(drop(ino));
    }
    return orphans.size();
}

}  // namespace fbfs
