// fbfs stat and fbfs verify.
#include <fmt/format.h>

#include <cstdio>

#include "cli/commands.h"
#include "cli/display.h"
#include "fs/mount_table.h"
#include "store/store.h"
#include "store/store_stats.h"

namespace fbfs::cli {

namespace {

int print_stats(const std::string& store_path, const std::string& only_volume, bool json) {
    auto store = Store::open(store_path, Store::Mode::open_existing);
    if (!store) {
        return fail(store.error().message);
    }
    auto stats = collect_stats(**store);
    if (!stats) {
        return fail(stats.error().message);
    }
    std::uint64_t logical = 0;
    std::string volumes_json;
    for (const auto& v : stats->volumes) {
        if (!only_volume.empty() && v.name != only_volume) {
            continue;
        }
        logical += v.logical_bytes;
        if (json) {
            volumes_json += fmt::format(
                "{}{{\"name\":\"{}\",\"files\":{},\"directories\":{},\"symlinks\":{},"
                "\"logical_bytes\":{}}}",
                volumes_json.empty() ? "" : ",", v.name, v.files, v.directories, v.symlinks,
                v.logical_bytes);
        } else {
            std::printf("volume %-16s %llu files, %llu directories, %llu symlinks, %s\n",
                        v.name.c_str(), static_cast<unsigned long long>(v.files),
                        static_cast<unsigned long long>(v.directories),
                        static_cast<unsigned long long>(v.symlinks),
                        human(v.logical_bytes).c_str());
        }
    }
    if (json) {
        std::printf(
            "{\"store\":\"%s\",\"objects\":%llu,\"stored_bytes\":%llu,"
            "\"logical_bytes\":%llu,\"volumes\":[%s]}\n",
            (*store)->root().c_str(), static_cast<unsigned long long>(stats->objects),
            static_cast<unsigned long long>(stats->stored_bytes),
            static_cast<unsigned long long>(logical), volumes_json.c_str());
        return 0;
    }
    std::printf("objects %llu (%llu referenced), stored %s, logical %s\n",
                static_cast<unsigned long long>(stats->objects),
                static_cast<unsigned long long>(stats->referenced_objects),
                human(stats->stored_bytes).c_str(), human(logical).c_str());
    return 0;
}

int verify(const std::string& store_path) {
    auto store = Store::open(store_path, Store::Mode::open_existing);
    if (!store) {
        return fail(store.error().message);
    }
    const ObjectPool& pool = (*store)->pool();
    std::uint64_t checked = 0;
    std::uint64_t bad = 0;
    Result<void> failure;
    auto walked = pool.for_each([&](const ObjectId& id, std::uint64_t) {
        auto intact = pool.verify(id);
        ++checked;
        if (!intact || !*intact) {
            ++bad;
            std::fprintf(stderr, "fbfs: corrupt object %s (%s)\n", id.hex().c_str(),
                         pool.object_path(id).c_str());
        }
    });
    if (!walked) {
        return fail(walked.error().message);
    }
    auto referenced = referenced_objects(**store);
    if (!referenced) {
        return fail(referenced.error().message);
    }
    for (const auto& id : *referenced) {
        if (!pool.contains(id)) {
            ++bad;
            std::fprintf(stderr, "fbfs: missing object %s, referenced by the metadata\n",
                         id.hex().c_str());
        }
    }
    std::printf("%llu objects verified, %llu problems\n", static_cast<unsigned long long>(checked),
                static_cast<unsigned long long>(bad));
    return bad == 0 ? 0 : 1;
}

}  // namespace

void add_store_commands(CLI::App& app, Action& action) {
    static std::string store;
    static std::string mountpoint;
    static bool json = false;
    auto* stat = app.add_subcommand("stat", "Show what a store holds: objects, bytes, volumes");
    add_store_option(*stat, store);
    stat->add_option("MOUNTPOINT", mountpoint, "Only the volume mounted here");
    stat->add_flag("--json", json, "Print JSON");
    stat->callback([&action] {
        action = [] {
            std::string volume;
            if (!mountpoint.empty()) {
                auto entry = find_mount(mountpoint);
                auto colon = entry ? entry->source.find(':') : std::string::npos;
                if (!entry || entry->fstype != "fuse.fbfs" || colon == std::string::npos) {
                    return fail(mountpoint +
                                " is not an fbfs mount (give a mountpoint of "
                                "fbfs mount, or none)");
                }
                volume = entry->source.substr(colon + 1, entry->source.rfind(':') - colon - 1);
            }
            return print_stats(store, volume, json);
        };
    });

    auto* check = app.add_subcommand("verify",
                                     "Re-hash every object; report corrupt or missing "
                                     "ones (exit 1 if any)");
    add_store_option(*check, store);
    check->callback([&action] { action = [] { return verify(store); }; });
}

}  // namespace fbfs::cli
