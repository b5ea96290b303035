// fbfs stat and fbfs verify.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "cli/display.h"
#include "fs/mount_table.h"
#include "store/meta/reference_check.h"
#include "store/meta/store.h"
#include "store/meta/store_stats.h"
#include "store/meta/volume_digest.h"
#include "store/remote/remote_origin.h"

namespace fbfs::cli {

namespace {

enum class StatFormat { text, json, markdown };

void print_json(const std::string& root, const StoreStats& stats,
                const std::vector<const VolumeStats*>& volumes, std::uint64_t logical,
                const std::string& source) {
    std::string list;
    for (const auto* v : volumes) {
        list += fmt::format(
            "{}{{\"name\":{},\"files\":{},\"directories\":{},\"symlinks\":{},"
            "\"logical_bytes\":{}}}",
            list.empty() ? "" : ",", json_string(v->name), v->files, v->directories, v->symlinks,
            v->logical_bytes);
    }
    fmt::print(
        "{{\"store\":{},\"objects\":{},\"stored_bytes\":{},\"logical_bytes\":{},"
        "\"volumes\":[{}]{}}}\n",
        json_string(root), stats.objects, stats.stored_bytes, logical, list,
        source.empty() ? "" : ",\"source\":" + json_string(source));
}

// GitHub-flavoured Markdown, for a CI job summary.
void print_markdown(const StoreStats& stats, const std::vector<const VolumeStats*>& volumes,
                    std::uint64_t logical) {
    fmt::print("| volume | files | directories | symlinks | bytes |\n|---|--:|--:|--:|--:|\n");
    for (const auto* v : volumes) {
        fmt::print("| {} | {} | {} | {} | {} |\n", v->name, v->files, v->directories, v->symlinks,
                   human(v->logical_bytes));
    }
    fmt::print(
        "\n| objects | referenced | stored | logical |\n|--:|--:|--:|--:|\n"
        "| {} | {} | {} | {} |\n",
        stats.objects, stats.referenced_objects, human(stats.stored_bytes), human(logical));
}

void print_text(const StoreStats& stats, const std::vector<const VolumeStats*>& volumes,
                std::uint64_t logical) {
    for (const auto* v : volumes) {
        fmt::print("volume {:<16} {} files, {} directories, {} symlinks, {}\n", v->name, v->files,
                   v->directories, v->symlinks, human(v->logical_bytes));
    }
    fmt::print("objects {} ({} referenced), stored {}, logical {}\n", stats.objects,
               stats.referenced_objects, human(stats.stored_bytes), human(logical));
}

// What the daemon serving `volume` says of its source's watch (<store>/log/<volume>.source,
// written by fs/overlay_watch.cpp), or "" for a mount without a source.
std::string source_status(const Store& store, const std::string& volume) {
    std::ifstream in(store.root() / "log" / (volume + ".source"));
    std::string line;
    std::getline(in, line);
    return line;
}

// fbfs stat --digest: one SHA-256 of what the volumes' trees hold (store/meta/volume_digest.h).
int print_digest(const std::string& store_path, const std::string& only_volume) {
    auto store = Store::open(store_path, Store::Mode::open_existing);
    if (!store) {
        return fail(store.error().message);
    }
    auto digest = store_content_digest(**store, only_volume);
    if (!digest) {
        return fail(digest.error().message);
    }
    fmt::print("{}\n", digest->hex());
    return 0;
}

int print_stats(const std::string& store_path, const std::string& only_volume, StatFormat format) {
    auto store = Store::open(store_path, Store::Mode::open_existing);
    if (!store) {
        return fail(store.error().message);
    }
    auto stats = collect_stats(**store);
    if (!stats) {
        return fail(stats.error().message);
    }
    std::vector<const VolumeStats*> volumes;
    std::uint64_t logical = 0;
    for (const auto& v : stats->volumes) {
        if (only_volume.empty() || v.name == only_volume) {
            volumes.push_back(&v);
            logical += v.logical_bytes;
        }
    }
    // Only for a volume named by its mountpoint: a status file outlives its mount.
    auto source = only_volume.empty() ? std::string() : source_status(**store, only_volume);
    switch (format) {
        case StatFormat::json:
            print_json((*store)->root().string(), *stats, volumes, logical, source);
            break;
        case StatFormat::markdown:
            print_markdown(*stats, volumes, logical);
            break;
        case StatFormat::text:
            print_text(*stats, volumes, logical);
            if (!source.empty()) {
                fmt::print("source {}\n", source);
            }
            break;
    }
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
    // A store pulled without --eager names objects its cache holds: remote, not missing.
    auto origin = read_remote_origin((*store)->root());
    if (!origin) {
        return fail(origin.error().message);
    }
    std::uint64_t remote = 0;
    for (const auto& id : *referenced) {
        if (pool.contains(id)) {
            continue;
        }
        if (*origin) {
            ++remote;
            continue;
        }
        ++bad;
        std::fprintf(stderr, "fbfs: missing object %s, referenced by the metadata\n",
                     id.hex().c_str());
    }
    if (remote > 0) {
        std::printf("%llu objects remote, not fetched yet (from %s)\n",
                    static_cast<unsigned long long>(remote), origin->value_or("").c_str());
    }
    auto counts = check_references(**store);
    if (!counts) {
        return fail(counts.error().message);
    }
    for (const auto& problem : *counts) {
        ++bad;
        std::fprintf(stderr, "fbfs: object %s %s\n", problem.object.c_str(), problem.what.c_str());
    }
    auto leaked = leaked_xattrs(**store);
    if (!leaked) {
        return fail(leaked.error().message);
    }
    for (const auto& x : *leaked) {
        ++bad;
        std::fprintf(stderr, "fbfs: attribute %s of inode %llu of volume %s outlived its inode\n",
                     x.name.c_str(), static_cast<unsigned long long>(x.ino), x.volume.c_str());
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
    static bool markdown = false;
    static bool digest = false;
    auto* stat = app.add_subcommand("stat", "Show what a store holds: objects, bytes, volumes");
    add_store_option(*stat, store);
    stat->add_option("MOUNTPOINT", mountpoint, "Only the volume mounted here");
    auto* json_flag = stat->add_flag("--json", json, "Print JSON");
    auto* markdown_flag =
        stat->add_flag("--markdown", markdown, "Print Markdown tables (for a CI job summary)")
            ->excludes(json_flag);
    stat->add_flag("--digest", digest,
                   "Print one SHA-256 of what the volumes' own trees hold (what builds wrote), "
                   "timestamps and checkout stamps aside")
        ->excludes(json_flag)
        ->excludes(markdown_flag);
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
            if (digest) {
                return print_digest(store, volume);
            }
            auto format = json       ? StatFormat::json
                          : markdown ? StatFormat::markdown
                                     : StatFormat::text;
            return print_stats(store, volume, format);
        };
    });

    auto* check = app.add_subcommand("verify",
                                     "Re-hash every object and check every reference count; "
                                     "report corrupt or missing objects and wrong counts (exit 1 "
                                     "if any)");
    add_store_option(*check, store);
    check->callback([&action] { action = [] { return verify(store); }; });
}

}  // namespace fbfs::cli
