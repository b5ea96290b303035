#include "store/remote/push_pull.h"

#include <unistd.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "store/base/printable.h"
#include "store/meta/remote_objects.h"
#include "store/meta/snapshot_tables.h"
#include "store/meta/store.h"
#include "store/meta/volume_selection.h"
#include "store/remote/manifest.h"
#include "store/remote/remote_origin.h"

namespace fbfs {

namespace {

// The names to push (select_volumes()): ENOENT if that is none.
Result<std::vector<std::string>> volume_names(const Store& store,
                                              const std::vector<std::string>& asked) {
    TRY_ASSIGN(auto names, select_volumes(store, asked));
    if (names.empty()) {
        return make_error(ENOENT, fmt::format("the store {} has no volumes to push (mount one and "
                                              "build in it first)",
                                              store.root().string()));
    }
    return names;
}

struct Named {
    std::string volume;
    InodeNumber ino = 0;
    std::uint64_t size = 0;
};

}  // namespace

Result<PushSummary> push_volumes(Store& store, HttpCas& cas, const std::vector<std::string>& asked,
                                 std::string_view key) {
    TRY_ASSIGN(auto names, volume_names(store, asked));
    TRY_ASSIGN(auto locks, lock_volumes(store, names,
                                        "unmount it with fbfs umount before pushing, so the "
                                        "files open there are pushed"));
    std::vector<VolumeSnapshot> volumes;
    TRY(store.env().read([&](LmdbTxn& txn) -> Result<void> {
        for (const auto& name : names) {
            TRY_ASSIGN(auto snapshot, read_snapshot(txn, store.tables(), name));
            volumes.push_back(std::move(snapshot));
        }
        return {};
    }));
    locks.clear();  // the snapshots are taken; objects never change

    std::vector<ObjectId> ids;
    std::unordered_map<ObjectId, Named> named;
    for (const auto& v : volumes) {
        for (const auto& [ino, record] : v.inodes) {
            if (record.object &&
                named.emplace(*record.object, Named{v.name, ino, record.size}).second) {
                ids.push_back(*record.object);
            }
        }
    }
    const ObjectPool& pool = store.pool();
    TRY_ASSIGN(auto origin, read_remote_origin(store.root()));
    auto source = [&](const ObjectId& id) -> Result<std::filesystem::path> {
        if (pool.contains(id)) {
            return pool.object_path(id);
        }
        const Named& where = named.at(id);
        std::string fix = origin ? fmt::format(
                                       "it was pulled lazily from {}: pull it with "
                                       "--eager first",
                                       *origin)
                                 : std::string("run fbfs verify");
        return make_error(ENOENT, fmt::format("the store {} lacks object {} (inode {} of volume "
                                              "'{}') and so does remote {}: cannot push it ({})",
                                              store.root().string(), id.hex(), where.ino,
                                              where.volume, cas.shown_url(), fix));
    };
    // The manifest goes up with the objects: nothing names it until the key, written last.
    TRY_ASSIGN(auto manifest, encode_manifest(volumes));
    ObjectId manifest_id = ObjectId::of(manifest);
    TRY_ASSIGN(auto uploaded, cas.upload_missing(ids, source, std::span(&manifest, 1)));
    PushSummary summary;
    for (const ObjectId& id : uploaded) {
        summary.bytes_uploaded += named.at(id).size;
    }
    TRY(cas.put_entry(manifest_key(key), encode_manifest_ref({manifest_id, manifest.size()})));
    // The remote holds every object of these volumes now. If it is the store's origin (or the
    // store had none, and now has it), gc may drop them from the pool.
    if (!origin || *origin == cas.base_url()) {
        if (!origin) {
            TRY(write_remote_origin(store.root(), cas.base_url()));
        }
        TRY(note_remote_objects(store, ids));
    }
    summary.volumes = volumes.size();
    summary.objects = ids.size();
    summary.objects_uploaded = uploaded.size();
    summary.manifest_bytes = manifest.size();
    summary.manifest = manifest_id;
    return summary;
}

namespace {

Result<Manifest> fetch_manifest(HttpCas& cas, std::string_view key, std::uint64_t& size) {
    TRY_ASSIGN(auto entry, cas.get_entry(manifest_key(key), 4096));
    if (!entry) {
        return make_error(ENOENT, fmt::format("remote {} has no entry named '{}' (push one with "
                                              "fbfs push --remote URL --key {})",
                                              cas.shown_url(), printable(key), printable(key)));
    }
    auto ref = decode_manifest_ref(*entry);
    if (!ref) {
        return make_error(EINVAL, fmt::format("remote {}: the entry named '{}' is not an fbfs "
                                              "manifest reference (push it again with fbfs push)",
                                              cas.shown_url(), printable(key)));
    }
    if (ref->size > k_max_manifest) {
        return make_error(EFBIG, fmt::format("remote {}: the manifest named '{}' claims {} bytes, "
                                             "more than fbfs accepts",
                                             cas.shown_url(), printable(key), ref->size));
    }
    TRY_ASSIGN(auto bytes, cas.get_content(ref->id, ref->size));
    size = bytes.size();
    auto manifest = decode_manifest(bytes);
    if (!manifest) {
        return make_error(manifest.error().code,
                          fmt::format("remote {}, key '{}': {}", cas.shown_url(), printable(key),
                                      manifest.error().message));
    }
    return manifest;
}

}  // namespace

Result<PullSummary> pull_volumes(Store& store, HttpCas& cas, std::string_view key, bool eager) {
    // Objects a killed fetch (an eager pull's or a mount's) was receiving.
    remove_abandoned_fetches(store.pool());
    PullSummary summary;
    TRY_ASSIGN(auto manifest, fetch_manifest(cas, key, summary.manifest_bytes));
    for (const auto& v : manifest.volumes) {
        summary.names.push_back(v.name);
    }
    // As unpack: a user other than root could not have set these through a mount.
    for (const auto& v : manifest.volumes) {
        const SnapshotXattr* privileged = privileged_xattr(v);
        if (::geteuid() != 0 && privileged != nullptr) {
            return make_error(
                EPERM, fmt::format("volume '{}' of key '{}' has attribute '{}' on inode {}, which "
                                   "only root may set (pull as root); nothing was pulled",
                                   printable(v.name), printable(key),
                                   printable(privileged->xattr.name), privileged->ino));
        }
    }
    constexpr std::string_view fix = "unmount it with fbfs umount before pulling";
    // Refused before anything is fetched; locked again for the transaction.
    TRY(lock_volumes(store, summary.names, fix));

    const ObjectPool& pool = store.pool();
    std::vector<ObjectId> absent;
    for (const auto& o : manifest.objects) {
        if (!pool.contains(o.id)) {
            absent.push_back(o.id);
        }
    }
    if (eager) {
        auto fetched = cas.fetch(absent, pool);
        if (!fetched) {
            for (const ObjectId& id : absent) {
                (void)store.remove_if_unreferenced(id);
            }
            return std::unexpected(fetched.error());
        }
        summary.objects_fetched = absent.size();
        summary.bytes_fetched = *fetched;
    } else {
        summary.objects_remote = absent.size();
    }
    if (::geteuid() != 0) {
        for (auto& v : manifest.volumes) {
            for (auto& [ino, record] : v.inodes) {
                record.uid = ::geteuid();
                record.gid = ::getegid();
            }
        }
    }
    auto install = [&]() -> Result<void> {
        TRY_ASSIGN(auto locks, lock_volumes(store, summary.names, fix));
        TRY_ASSIGN(auto origin, read_remote_origin(store.root()));
        bool new_origin = !absent.empty() && !eager && origin != cas.base_url();
        if (new_origin) {
            TRY(write_remote_origin(store.root(), cas.base_url()));
        }
        return store.env().write([&](LmdbTxn& txn) -> Result<void> {
            for (const auto& v : manifest.volumes) {
                TRY(replace_volume(txn, store.tables(), v));
            }
            // What the store's origin holds (remote_objects.h): gc may drop it from the pool.
            if (new_origin) {
                TRY(forget_remote_objects(txn, store.tables()));
            }
            if (new_origin || origin == cas.base_url()) {
                for (const auto& o : manifest.objects) {
                    TRY(note_remote_object(txn, store.tables(), o.id));
                }
            }
            return {};
        });
    };
    if (auto installed = install(); !installed) {
        if (eager) {
            for (const ObjectId& id : absent) {
                (void)store.remove_if_unreferenced(id);
            }
        }
        return std::unexpected(installed.error());
    }
    (void)store.remove_dead_objects();
    summary.volumes = manifest.volumes.size();
    summary.objects = manifest.objects.size();
    return summary;
}

}  // namespace fbfs
