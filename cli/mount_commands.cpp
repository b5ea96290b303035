// fbfs mount, fbfs umount, fbfs run.
#include <cstdlib>

#include "cli/commands.h"
#include "cli/quantities.h"
#include "fs/mount.h"

namespace fbfs::cli {

namespace {

struct MountArgs {
    std::string store;
    std::string volume = "default";
    std::string source;
    std::string mountpoint;
    bool foreground = false;
    bool allow_other = false;
    bool debug = false;
    std::string remote;
    std::string max_store_size;
};

void add_mount_options(CLI::App& command, MountArgs& args) {
    add_store_option(command, args.store);
    command.add_option("--volume", args.volume, "Volume of the store to show")
        ->capture_default_str();
    command.add_option("--source", args.source,
                       "Show this checkout under the volume (read-only; writes go to the "
                       "volume, unchanged files keep the mtimes they had last time)");
    command.add_flag("--allow-other", args.allow_other,
                     "Let other users use the mount (non-root needs user_allow_other in "
                     "/etc/fuse.conf)");
    command.add_flag("--debug", args.debug, "Trace every FUSE request (with --foreground)");
    if (const char* remote = std::getenv("FBFS_REMOTE"); remote != nullptr) {
        args.remote = remote;
    }
    command.add_option("--remote", args.remote,
                       "Cache to fetch files' bytes from on first read, for volumes pulled "
                       "without --eager ($FBFS_REMOTE; default: the cache they were pulled from)");
    command.add_option("--max-store-size", args.max_store_size,
                       "When the mount ends, drop other volumes, least recently mounted first, "
                       "until the store's objects fit this size (as fbfs gc --max-size: 10G)");
    command.add_option("MOUNTPOINT", args.mountpoint, "An empty directory to mount on")->required();
}

Result<MountRequest> request_of(const MountArgs& args) {
    MountRequest request;
    if (!args.max_store_size.empty()) {
        TRY_ASSIGN(request.max_store_size, parse_size(args.max_store_size, "--max-store-size"));
    }
    request.store = args.store;
    request.volume = args.volume;
    request.mountpoint = args.mountpoint;
    request.source = args.source;
    request.foreground = args.foreground;
    request.allow_other = args.allow_other;
    request.debug = args.debug;
    request.remote = args.remote;
    return request;
}

}  // namespace

void add_mount_commands(CLI::App& app, Action& action) {
    static MountArgs mount_args;
    auto* mount = app.add_subcommand("mount", "Mount a volume of the store at MOUNTPOINT");
    add_mount_options(*mount, mount_args);
    mount->add_flag("--foreground", mount_args.foreground,
                    "Stay attached and log to stderr (default: return once mounted)");
    mount->callback([&action] {
        action = [] {
            auto request = request_of(mount_args);
            auto mounted = request ? mount_volume(*request) : std::unexpected(request.error());
            return mounted ? 0 : fail(mounted.error().message);
        };
    });

    static std::string umount_point;
    auto* umount = app.add_subcommand(
        "umount", "Unmount an fbfs mount and wait until everything written is saved");
    umount->add_option("MOUNTPOINT", umount_point, "Where the volume is mounted")->required();
    umount->callback([&action] {
        action = [] {
            auto unmounted = unmount_volume(umount_point);
            return unmounted ? 0 : fail(unmounted.error().message);
        };
    });

    static MountArgs run_args;
    static std::vector<std::string> command;
    auto* run = app.add_subcommand(
        "run", "Mount, run COMMAND inside the mount, unmount; exit with COMMAND's status");
    add_mount_options(*run, run_args);
    run->add_option("COMMAND", command, "The command to run, after --")->required();
    run->positionals_at_end();
    run->footer("Example: fbfs run /tmp/fbfs/ws -- make -j8");
    run->callback([&action] {
        action = [] {
            // CLI11 passes the "--" separator on as the first word.
            if (!command.empty() && command.front() == "--") {
                command.erase(command.begin());
            }
            if (command.empty()) {
                return fail("no command to run (give it after --: fbfs run MOUNTPOINT -- make)");
            }
            auto request = request_of(run_args);
            if (!request) {
                return fail(request.error().message);
            }
            auto status = run_in_mount(*request, command);
            return status ? *status : fail(status.error().message);
        };
    });
}

}  // namespace fbfs::cli
