// fbfs: parses the command line and hands over to a subcommand (cli/*_commands.cpp).
#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "cli/commands.h"
#include "store/meta/schema.h"
#include "store/meta/store.h"
#include "store/pack/pack_format.h"

namespace fbfs::cli {

int fail(const std::string& message) {
    std::fprintf(stderr, "fbfs: %s\n", message.c_str());
    return 1;
}

void add_store_option(CLI::App& command, std::string& store) {
    store = Store::default_root().string();
    command.add_option("--store", store, "Store directory ($FBFS_STORE, else ~/.cache/fbfs)")
        ->capture_default_str();
}

}  // namespace fbfs::cli

int main(int argc, char** argv) {
    CLI::App app{
        "fbfs: a content-addressed build filesystem. Builds at a fixed path, with stable "
        "mtimes, cached in one file.",
        "fbfs"};
    app.set_version_flag("--version",
                         fmt::format("fbfs {} (pack format {}, store schema {})", FBFS_VERSION,
                                     fbfs::pack::k_version, fbfs::k_schema_version));
    app.require_subcommand(1);
    bool verbose = false;
    app.add_flag("-v,--verbose", verbose, "Log diagnostics (also FBFS_LOG=debug)");

    fbfs::cli::Action action;
    fbfs::cli::add_mount_commands(app, action);
    fbfs::cli::add_store_commands(app, action);
    fbfs::cli::add_pack_commands(app, action);
    fbfs::cli::add_remote_commands(app, action);
    fbfs::cli::add_volume_commands(app, action);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }
    auto logger = spdlog::stderr_color_st("fbfs");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("fbfs: %l: %v");
    spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn);
    spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL
    if (const char* level = std::getenv("FBFS_LOG"); level != nullptr) {
        spdlog::set_level(spdlog::level::from_str(level));
    }
    return action ? action() : 2;
}
