// The subcommands of the fbfs command line. Each registers itself on the CLI11 app and, when
// chosen, returns the process exit status: 0 ok, 1 failure (one line on stderr), 2 usage.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace fbfs::cli {

// What a chosen subcommand runs.
using Action = std::function<int()>;

void add_mount_commands(CLI::App& app, Action& action);
void add_store_commands(CLI::App& app, Action& action);
void add_pack_commands(CLI::App& app, Action& action);
void add_remote_commands(CLI::App& app, Action& action);
void add_volume_commands(CLI::App& app, Action& action);

// Prints "fbfs: <message>" on stderr and returns 1.
int fail(const std::string& message);

// The --store option every subcommand shares, defaulting to $FBFS_STORE or the user's cache.
void add_store_option(CLI::App& command, std::string& store);

}  // namespace fbfs::cli
