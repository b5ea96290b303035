// fbfs pack and fbfs unpack: a store's volumes as one file for a CI cache, and back.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/display.h"
#include "cli/store_cleanup.h"
#include "fs/remote_objects.h"
#include "store/base/owned_temp_file.h"
#include "store/base/unique_fd.h"
#include "store/meta/store.h"
#include "store/pack/pack_writer.h"
#include "store/pack/unpack.h"

namespace fbfs::cli {

namespace {

namespace fs = std::filesystem;

volatile std::sig_atomic_t g_interrupted = 0;

// Ctrl-C or a TERM stops pack and unpack at the next chunk, so their cleanup runs (no temp files
// left, the store as it was); a second one ends the process at once.
void on_signal(int signal) {
    g_interrupted = 1;
    std::signal(signal, SIG_DFL);
}

void stop_on_signals() {
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
}

struct PackArgs {
    std::string store;
    std::vector<std::string> volumes;
    std::string output;
    int level = 3;
};

std::string ratio(std::uint64_t logical, std::uint64_t distinct) {
    return distinct ? fmt::format("{:.1f}x",
                                  static_cast<double>(logical) / static_cast<double>(distinct))
                    : "-";
}

// A file next to `target` that becomes `target` only once it is complete. It names this process
// and is locked while it lives, so the next pack to `target` can tell that a killed pack left it,
// and removes it.
class TempOutput {
public:
    static Result<TempOutput> create(const fs::path& target) {
        fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
        std::string prefix = "." + target.filename().string() + ".fbfs-";
        // A temp file a killed pack left names it (".NAME.fbfs-PID-XXXXXX") and nobody locks it.
        remove_abandoned_temps(dir, prefix);
        auto temp = create_owned_temp(dir, prefix);
        if (!temp) {
            return sys_error(temp.error().code,
                             fmt::format("cannot write in {} (give -o a path in a directory "
                                         "that exists and you can write to)",
                                         dir.string()));
        }
        UniqueFd fd = std::move(temp->fd);
        std::string path = temp->path.string();
        mode_t mask = ::umask(0);
        ::umask(mask);
        ::fchmod(fd.get(), 0666 & ~mask);
        return TempOutput(std::move(fd), path, target);
    }
    TempOutput(TempOutput&&) = default;
    ~TempOutput() {
        if (!m_path.empty()) {
            ::unlink(m_path.c_str());
        }
    }

    int fd() const { return m_fd.get(); }
    Result<void> commit() {
        if (::close(m_fd.release()) != 0) {
            return errno_error(fmt::format("cannot write {}", m_target.string()));
        }
        if (::rename(m_path.c_str(), m_target.c_str()) != 0) {
            return errno_error(fmt::format("cannot create {}", m_target.string()));
        }
        m_path.clear();
        return {};
    }

private:
    TempOutput(UniqueFd fd, std::string path, fs::path target)
        : m_fd(std::move(fd)), m_path(std::move(path)), m_target(std::move(target)) {}
    UniqueFd m_fd;
    std::string m_path;
    fs::path m_target;
};

int run_pack(const PackArgs& args) {
    bool to_stdout = args.output == "-";
    if (to_stdout && ::isatty(STDOUT_FILENO)) {
        return fail("will not write a pack to a terminal; redirect stdout or give -o FILE");
    }
    if (!to_stdout && fs::is_directory(args.output)) {
        return fail(args.output + " is a directory; give -o the pack file's path");
    }
    auto store = Store::open(args.store, Store::Mode::open_existing);
    if (!store) {
        return fail(store.error().message);
    }
    // Objects a lazy pull did not fetch, or gc dropped because the remote holds them, come from
    // the store's origin as the pack needs them.
    if (auto attached = attach_remote(**store, ""); !attached) {
        return fail(attached.error().message);
    }
    std::optional<TempOutput> file;
    if (!to_stdout) {
        auto created = TempOutput::create(args.output);
        if (!created) {
            return fail(created.error().message);
        }
        file.emplace(std::move(*created));
    }
    stop_on_signals();
    ProgressLine line("fbfs pack");
    PackOptions options;
    options.level = args.level;
    auto packed = pack_store(**store, args.volumes, file ? file->fd() : STDOUT_FILENO, options,
                             [&](const Progress& p) {
                                 line.update(p);
                                 return g_interrupted == 0;
                             });
    line.clear();
    if (!packed) {
        return fail(packed.error().message);
    }
    if (file) {
        if (auto ok = file->commit(); !ok) {
            return fail(ok.error().message);
        }
    }
    std::fprintf(stderr,
                 "fbfs pack: %zu volumes, %zu objects, %s logical, %s distinct (dedupe %s), "
                 "%s packed, %.2f s%s\n",
                 packed->volumes, packed->objects, human(packed->logical_bytes).c_str(),
                 human(packed->object_bytes).c_str(),
                 ratio(packed->logical_bytes, packed->object_bytes).c_str(),
                 human(packed->packed_bytes).c_str(), line.seconds(),
                 to_stdout ? "" : (" -> " + args.output).c_str());
    return 0;
}

int run_unpack(const std::string& store_path, const std::string& input,
               const std::vector<std::string>& only) {
    UniqueFd fd;
    if (input != "-") {
        fd = UniqueFd(::open(input.c_str(), O_RDONLY | O_CLOEXEC));
        struct stat st {};
        if (!fd) {
            return fail(
                fmt::format("cannot open {}: {} (give the path of a pack that fbfs pack "
                            "wrote)",
                            input, std::strerror(errno)));
        }
        if (::fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode)) {
            return fail(input + " is a directory; give the path of a pack file");
        }
    } else if (::isatty(STDIN_FILENO)) {
        return fail("will not read a pack from a terminal; redirect stdin or give FILE");
    }
    // What this command creates for the store goes again if the unpack fails.
    StoreCleanup cleanup(store_path);
    auto store = Store::open(store_path, Store::Mode::create_if_missing);
    if (!store) {
        cleanup.undo();
        return fail(store.error().message);
    }
    stop_on_signals();
    ProgressLine line("fbfs unpack");
    auto unpacked = unpack(
        **store, fd ? fd.get() : STDIN_FILENO,
        [&](const Progress& p) {
            line.update(p);
            return g_interrupted == 0;
        },
        only);
    line.clear();
    if (!unpacked) {
        store->reset();
        cleanup.undo();
        return fail(unpacked.error().message);
    }
    std::fprintf(stderr,
                 "fbfs unpack: %zu volumes, %zu objects (%zu new), %s logical, %s distinct "
                 "(dedupe %s), %s packed, %.2f s\n",
                 unpacked->volumes, unpacked->objects, unpacked->objects_added,
                 human(unpacked->logical_bytes).c_str(), human(unpacked->object_bytes).c_str(),
                 ratio(unpacked->logical_bytes, unpacked->object_bytes).c_str(),
                 human(unpacked->packed_bytes).c_str(), line.seconds());
    return 0;
}

}  // namespace

void add_pack_commands(CLI::App& app, Action& action) {
    static PackArgs pack_args;
    auto* pack = app.add_subcommand(
        "pack", "Pack volumes of the store into one file for a CI cache (actions/cache)");
    add_store_option(*pack, pack_args.store);
    pack->add_option("--volume", pack_args.volumes, "A volume to pack (repeat; default: all)");
    pack->add_option("-o,--output", pack_args.output, "The pack file to write, or - for stdout")
        ->required();
    pack->add_option("--level", pack_args.level, "zstd compression level, 1 (fast) to 19 (small)")
        ->check(CLI::Range(1, 19))
        ->capture_default_str();
    pack->footer(
        "Holds each object the volumes name once, compressed; written to a temp file and renamed "
        "into place. Volumes being mounted are refused: unmount first.\n"
        "Example: fbfs pack -o ~/fbfs.pack");
    pack->callback([&action] { action = [] { return run_pack(pack_args); }; });

    static std::string unpack_store;
    static std::string unpack_input;
    static std::vector<std::string> unpack_only;
    auto* unpack_command = app.add_subcommand(
        "unpack", "Unpack a pack file into the store, replacing the volumes it holds");
    add_store_option(*unpack_command, unpack_store);
    unpack_command->add_option("FILE", unpack_input, "The pack file, or - for stdin")->required();
    unpack_command
        ->add_option("--only", unpack_only,
                     "Unpack only this volume of the pack, and the objects it names "
                     "(repeatable; a name the pack lacks is refused)")
        ->allow_extra_args(false);
    unpack_command->footer(
        "Checks every byte before changing anything: on any error the store is left as it was. "
        "Objects already in the store are kept; other volumes are left alone. Creates the store "
        "if missing.\n"
        "Example: fbfs unpack ~/fbfs.pack && fbfs mount --source \"$PWD\" /tmp/fbfs/ws");
    unpack_command->callback(
        [&action] { action = [] { return run_unpack(unpack_store, unpack_input, unpack_only); }; });
}

}  // namespace fbfs::cli
