// fbfs push and fbfs pull: volumes to and from a shared HTTP cache (bazel-remote, nginx WebDAV).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/display.h"
#include "cli/store_cleanup.h"
#include "store/meta/store.h"
#include "store/remote/http_cas.h"
#include "store/remote/push_pull.h"

namespace fbfs::cli {

namespace {

struct RemoteArgs {
    std::string store;
    std::string remote;
    std::string key = "default";
    std::vector<std::string> volumes;
    bool eager = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Result<HttpCas> open_remote(const std::string& remote) {
    if (remote.empty()) {
        return make_error(EINVAL, "no remote cache given (use --remote URL or set $FBFS_REMOTE)");
    }
    TRY_ASSIGN(auto options, RemoteOptions::from_environment());
    return HttpCas::open(remote, std::move(options));
}

int run_push(const RemoteArgs& args) {
    auto start = std::chrono::steady_clock::now();
    auto cas = open_remote(args.remote);
    if (!cas) {
        return fail(cas.error().message);
    }
    auto store = Store::open(args.store, Store::Mode::open_existing);
    if (!store) {
        return fail(store.error().message);
    }
    auto pushed = push_volumes(**store, *cas, args.volumes, args.key);
    if (!pushed) {
        return fail(pushed.error().message);
    }
    std::fprintf(stderr,
                 "fbfs push: %zu volumes, %zu objects (%zu uploaded, %s), manifest %s, key '%s' "
                 "on %s, %.2f s\n",
                 pushed->volumes, pushed->objects, pushed->objects_uploaded,
                 human(pushed->bytes_uploaded).c_str(), human(pushed->manifest_bytes).c_str(),
                 args.key.c_str(), cas->shown_url().c_str(), seconds_since(start));
    return 0;
}

int run_pull(const RemoteArgs& args) {
    auto start = std::chrono::steady_clock::now();
    auto cas = open_remote(args.remote);
    if (!cas) {
        return fail(cas.error().message);
    }
    StoreCleanup cleanup(args.store);
    auto store = Store::open(args.store, Store::Mode::create_if_missing);
    if (!store) {
        cleanup.undo();
        return fail(store.error().message);
    }
    auto pulled = pull_volumes(**store, *cas, args.key, args.eager);
    if (!pulled) {
        store->reset();
        cleanup.undo();
        return fail(pulled.error().message);
    }
    std::string objects =
        args.eager
            ? fmt::format("{} fetched, {}", pulled->objects_fetched, human(pulled->bytes_fetched))
            : fmt::format("{} remote, fetched on first read", pulled->objects_remote);
    std::fprintf(stderr, "fbfs pull: %zu volumes, %zu objects (%s), manifest %s, %.2f s\n",
                 pulled->volumes, pulled->objects, objects.c_str(),
                 human(pulled->manifest_bytes).c_str(), seconds_since(start));
    return 0;
}

void add_remote_option(CLI::App& command, std::string& remote) {
    if (const char* env = std::getenv("FBFS_REMOTE"); env != nullptr) {
        remote = env;
    }
    command.add_option("--remote", remote,
                       "Base URL of the cache, http(s)://[user:password@]host[:port][/path] "
                       "($FBFS_REMOTE)");
}

}  // namespace

void add_remote_commands(CLI::App& app, Action& action) {
    static RemoteArgs push_args;
    auto* push = app.add_subcommand(
        "push", "Upload volumes to a shared cache (bazel-remote, nginx WebDAV) under a key");
    add_store_option(*push, push_args.store);
    add_remote_option(*push, push_args.remote);
    push->add_option("--key", push_args.key, "The name runners pull it by")->capture_default_str();
    push->add_option("--volume", push_args.volumes, "A volume to push (repeat; default: all)");
    push->footer(
        "Asks the cache which objects it lacks (parallel HEADs) and uploads each as soon as "
        "the answer comes (parallel PUTs), with the volumes' metadata; then points the key at "
        "it. The cache becomes the store's origin if it had none, so gc may later drop objects "
        "the cache holds. Credentials: user:password in the URL or "
        "$FBFS_REMOTE_HEADER (e.g. \"Authorization: Bearer TOKEN\"); never printed. TLS is "
        "always verified; $FBFS_REMOTE_CA names a PEM file of CA certificates to trust instead "
        "of the system's.\n"
        "Example: fbfs push --remote https://cache.example:9090/fbfs --key main");
    push->callback([&action] { action = [] { return run_push(push_args); }; });

    static RemoteArgs pull_args;
    auto* pull = app.add_subcommand(
        "pull", "Install the volumes a key names from a shared cache; objects come on first read");
    add_store_option(*pull, pull_args.store);
    add_remote_option(*pull, pull_args.remote);
    pull->add_option("--key", pull_args.key, "The name it was pushed under")->required();
    pull->add_flag("--eager", pull_args.eager,
                   "Fetch every object now, in parallel, instead of on first read");
    pull->footer(
        "Installs the metadata only, checked as unpack checks a pack, all or nothing; a mount "
        "then fetches each file's bytes the first time it is read, checked by hash. Creates the "
        "store if missing.\n"
        "Example: fbfs pull --remote https://cache.example:9090/fbfs --key main && fbfs mount "
        "--source \"$PWD\" /tmp/fbfs/ws");
    pull->callback([&action] { action = [] { return run_pull(pull_args); }; });
}

}  // namespace fbfs::cli
