// fbfs volume list | rm | cp, and fbfs gc: a store's volumes seen, dropped and copied, and the
// store kept within a size.
#include <fmt/format.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/display.h"
#include "cli/quantities.h"
#include "fs/mount_table.h"
#include "store/meta/store.h"
#include "store/meta/volume_gc.h"
#include "store/meta/volume_lock.h"
#include "store/meta/volume_removal.h"
#include "store/meta/volume_usage.h"
#include "store/remote/origin_check.h"
#include "store/remote/remote_origin.h"

namespace fbfs::cli {

namespace {

// Who uses a volume now: the pid holding its lock and, for a mount, where (empty for a pack or
// unpack, or a mount in another mount namespace).
struct Holder {
    pid_t pid = 0;
    std::string mountpoint;
};

std::optional<Holder> holder_of(const Store& store, const std::string& volume) {
    auto pid = VolumeLock::holder(store.root(), volume);
    if (!pid) {
        return std::nullopt;
    }
    // Nothing in the store names a mountpoint: a mount's daemon is found by the source it gave
    // its mount, "fbfs:<volume>:<pid>" (where this mount namespace can see it).
    auto where = mountpoint_of(fmt::format("fbfs:{}:{}", volume, *pid));
    return Holder{*pid, where ? where->string() : ""};
}

std::string json_time(const std::optional<VolumeTimes>& times, TimeNs VolumeTimes::*field) {
    return times && (*times).*field != 0 ? json_string(utc_time((*times).*field, true)) : "null";
}

std::string text_time(const std::optional<VolumeTimes>& times, TimeNs VolumeTimes::*field) {
    if (!times) {
        return "unknown";
    }
    return (*times).*field != 0 ? utc_time((*times).*field) : "never";
}

std::string json_holder(const std::optional<Holder>& h) {
    if (!h) {
        return "null";
    }
    return fmt::format("{{\"pid\":{},\"mountpoint\":{}}}", h->pid,
                       h->mountpoint.empty() ? "null" : json_string(h->mountpoint));
}

std::string text_holder(const std::optional<Holder>& h) {
    if (!h) {
        return "-";
    }
    if (h->mountpoint.empty()) {
        return fmt::format("in use by pid {}", h->pid);
    }
    return fmt::format("{} (pid {})", h->mountpoint, h->pid);
}

void print_list_json(const Store& store, const std::vector<VolumeUsage>& usage) {
    std::string list;
    for (const auto& v : usage) {
        list += fmt::format(
            "{}{{\"name\":{},\"files\":{},\"directories\":{},\"symlinks\":{},"
            "\"logical_bytes\":{},\"exclusive_bytes\":{},\"exclusive_objects\":{},"
            "\"stamps\":{},\"created\":{},\"last_mounted\":{},\"mounted\":{}}}",
            list.empty() ? "" : ",", json_string(v.name), v.files, v.directories, v.symlinks,
            v.logical_bytes, v.exclusive.bytes, v.exclusive.objects, v.stamps,
            json_time(v.times, &VolumeTimes::created),
            json_time(v.times, &VolumeTimes::last_mounted), json_holder(holder_of(store, v.name)));
    }
    fmt::print("{{\"store\":{},\"volumes\":[{}]}}\n", json_string(store.root().string()), list);
}

void print_list_text(const Store& store, const std::vector<VolumeUsage>& usage) {
    fmt::print("{:<16} {:>8} {:>6} {:>10} {:>10} {:>7}  {:<20}  {:<20}  {}\n", "VOLUME", "FILES",
               "DIRS", "LOGICAL", "OWN", "STAMPS", "CREATED", "LAST MOUNTED", "MOUNTED NOW");
    for (const auto& v : usage) {
        fmt::print("{:<16} {:>8} {:>6} {:>10} {:>10} {:>7}  {:<20}  {:<20}  {}\n", v.name, v.files,
                   v.directories, human(v.logical_bytes), human(v.exclusive.bytes), v.stamps,
                   text_time(v.times, &VolumeTimes::created),
                   text_time(v.times, &VolumeTimes::last_mounted),
                   text_holder(holder_of(store, v.name)));
    }
}

int list_volumes(const std::string& store_path, bool json) {
    auto store = Store::open(store_path, Store::Mode::open_existing);
    if (!store) {
        return fail(store.error().message);
    }
    auto usage = collect_volume_usage(**store);
    if (!usage) {
        return fail(usage.error().message);
    }
    json ? print_list_json(**store, *usage) : print_list_text(**store, *usage);
    return 0;
}

int remove(const std::string& store_path, const std::vector<std::string>& names, bool dry_run) {
    auto store = Store::open(store_path, Store::Mode::open_existing);
    if (!store) {
        return fail(store.error().message);
    }
    auto removed = remove_volumes(**store, names, dry_run);
    if (!removed) {
        return fail(removed.error().message);
    }
    const char* verb = dry_run ? "would remove" : "removed";
    for (const auto& [name, freed] : removed->volumes) {
        fmt::print("{} volume '{}': {} objects only it held, {}\n", verb, name, freed.objects,
                   human(freed.bytes));
    }
    fmt::print("{} {} objects, {} bytes ({})\n", dry_run ? "would free" : "freed",
               removed->total.objects, removed->total.bytes, human(removed->total.bytes));
    return 0;
}

int copy(const std::string& store_path, const std::string& from, const std::string& to) {
    auto store = Store::open(store_path, Store::Mode::open_existing);
    if (!store) {
        return fail(store.error().message);
    }
    auto copied = copy_volume(**store, from, to);
    if (!copied) {
        return fail(copied.error().message);
    }
    fmt::print("copied volume '{}' to '{}': {} inodes, every object shared\n", from, to, *copied);
    return 0;
}

struct GcArgs {
    std::string store;
    std::string max_size;
    std::string older_than;
    std::vector<std::string> keep;
    bool dry_run = false;
};

int gc(const GcArgs& args) {
    GcPolicy policy;
    if (args.max_size.empty() && args.older_than.empty()) {
        return fail(
            "fbfs gc needs --max-size SIZE or --older-than DURATION (or both): say when "
            "a volume should go");
    }
    if (!args.max_size.empty()) {
        auto size = parse_size(args.max_size, "--max-size");
        if (!size) {
            return fail(size.error().message);
        }
        policy.max_bytes = *size;
    }
    if (!args.older_than.empty()) {
        auto age = parse_duration(args.older_than, "--older-than");
        if (!age) {
            return fail(age.error().message);
        }
        policy.older_than = *age;
    }
    policy.keep = {args.keep.begin(), args.keep.end()};
    policy.dry_run = args.dry_run;
    auto store = Store::open(args.store, Store::Mode::open_existing);
    if (!store) {
        return fail(store.error().message);
    }
    if (!args.dry_run) {
        auto options = RemoteOptions::from_environment();
        if (!options) {
            return fail(options.error().message);
        }
        auto check = origin_missing_check(**store, std::move(*options));
        if (!check) {
            return fail(check.error().message);
        }
        policy.remote_missing = std::move(*check);
    }
    auto report = collect_garbage(**store, policy, now_ns());
    if (!report) {
        return fail(report.error().message);
    }
    const char* verb = args.dry_run ? "would drop" : "dropped";
    if (report->strays.objects > 0) {
        fmt::print("{} {} objects ({}) that nothing names, left by a killed pull or unpack\n",
                   verb, report->strays.objects, human(report->strays.bytes));
    }
    if (report->fetchable.objects > 0) {
        auto origin = read_remote_origin((*store)->root());
        fmt::print("{} {} pooled objects ({}) that remote {} holds: a mount fetches them again\n",
                   verb, report->fetchable.objects, human(report->fetchable.bytes),
                   origin && *origin ? **origin : std::string("(none)"));
    }
    if (report->remote_lacked > 0) {
        fmt::print("kept {} objects the remote no longer has\n", report->remote_lacked);
    }
    if (!report->remote_error.empty()) {
        std::fprintf(stderr,
                     "fbfs: dropped no pooled object: cannot ask the remote which it still "
                     "holds (%s)\n",
                     report->remote_error.c_str());
    }
    for (const auto& v : report->dropped) {
        fmt::print("{} volume '{}' (last used {}): {} objects, {}\n", verb, v.name,
                   v.last_used != 0 ? utc_time(v.last_used) : "unknown", v.freed.objects,
                   human(v.freed.bytes));
    }
    for (const auto& name : report->busy) {
        fmt::print("kept volume '{}': it is in use (mounted, or being packed)\n", name);
    }
    fmt::print("store {} -> {}{}\n", human(report->bytes_before), human(report->bytes_after),
               policy.max_bytes ? fmt::format(" (bound {})", human(*policy.max_bytes)) : "");
    if (policy.max_bytes && report->bytes_after > *policy.max_bytes) {
        std::fprintf(stderr,
                     "fbfs: the store is still over --max-size: what is left belongs to volumes "
                     "that are mounted or kept (--keep)\n");
    }
    return 0;
}

void add_volume_subcommands(CLI::App& volume, Action& action) {
    static std::string store;
    static bool json = false;
    auto* list = volume.add_subcommand(
        "list",
        "List the volumes: files, directories, logical bytes, bytes only this volume "
        "holds (what fbfs volume rm would free), source stamps, when made, when last "
        "mounted, and where and by which pid it is mounted now");
    add_store_option(*list, store);
    list->add_flag("--json", json,
                   "Print JSON (times as UTC ISO 8601 to the nanosecond; null: never mounted)");
    list->callback([&action] { action = [] { return list_volumes(store, json); }; });

    static std::vector<std::string> names;
    static bool dry_run = false;
    auto* rm = volume.add_subcommand(
        "rm",
        "Remove volumes and free the objects no other volume names (all or none: an "
        "unknown or mounted volume stops the whole command)");
    add_store_option(*rm, store);
    rm->add_option("NAME", names, "Volumes to remove")->required();
    rm->add_flag("--dry-run", dry_run, "Say what would be freed; change nothing");
    rm->callback([&action] { action = [] { return remove(store, names, dry_run); }; });

    static std::string from;
    static std::string to;
    auto* cp = volume.add_subcommand(
        "cp",
        "Copy a volume's metadata to a new volume, sharing every object (fast: no file "
        "bytes are copied). Changes to either stay its own. SRC may be mounted: the copy "
        "is one consistent moment of it (files open for writing as of their last close)");
    add_store_option(*cp, store);
    cp->add_option("SRC", from, "The volume to copy")->required();
    cp->add_option("DST", to, "The new volume (must not exist)")->required();
    cp->footer("Example: fbfs volume cp main pr-123 && fbfs mount --volume pr-123 /tmp/fbfs/ws");
    cp->callback([&action] { action = [] { return copy(store, from, to); }; });
}

}  // namespace

void add_volume_commands(CLI::App& app, Action& action) {
    auto* volume = app.add_subcommand("volume", "List, remove or copy the volumes of a store");
    volume->require_subcommand(1);
    add_volume_subcommands(*volume, action);

    static GcArgs args;
    auto* gc_command = app.add_subcommand(
        "gc",
        "Drop pooled objects the remote holds, then the least recently mounted volumes, until "
        "the store fits --max-size (never a mounted or --keep volume)");
    add_store_option(*gc_command, args.store);
    gc_command->add_option("--max-size", args.max_size,
                           "Bound on the objects' bytes (as fbfs stat's 'stored'): 500M, 10G, "
                           "1.5GiB (K/M/G/T powers of 1024, KB/MB/GB/TB of 1000)");
    gc_command->add_option("--older-than", args.older_than,
                           "Drop every volume not mounted for this long: 90m, 12h, 7d, 2w");
    gc_command->add_option("--keep", args.keep, "Never drop this volume (repeatable)")
        ->allow_extra_args(false);
    gc_command->add_flag("--dry-run", args.dry_run, "Say what would be dropped; change nothing");
    gc_command->footer(
        "Over --max-size, pooled objects that the store's remote (its origin: the cache it was "
        "pulled from or pushed to) holds go first, least recently read through a mount first; "
        "the remote is asked first that it still has them, and a mount fetches them again on "
        "first read (a dry run does not ask). Then volumes go whole, least recently mounted (or made, if never mounted) first, until the "
        "objects' bytes fit --max-size and no volume is older than --older-than; the objects only "
        "they named are deleted. A volume being mounted, packed or unpacked is passed over. fbfs "
        "mount --max-store-size SIZE does the same when its mount ends.\n"
        "Example: fbfs gc --max-size 20G --keep main");
    gc_command->callback([&action] { action = [] { return gc(args); }; });
}

}  // namespace fbfs::cli
