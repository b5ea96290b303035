#include "fs/mount.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stop_token>
#include <string_view>
#include <thread>

#include "fs/filesystem.h"
#include "fs/fuse_device.h"
#include "fs/fuse_server.h"
#include "fs/kernel_warmer.h"
#include "fs/lower_layer.h"
#include "fs/mount_table.h"
#include "store/meta/store.h"
#include "store/meta/volume_lock.h"
#include "store/meta/volume_tree.h"

namespace fbfs {

namespace fs = std::filesystem;

namespace {

// How long a new mount's warm-up may delay `fbfs mount`; the rest goes on in the background.
constexpr std::chrono::milliseconds k_foreground_warm_up{1000};

Result<void> check_mountpoint(const fs::path& mountpoint) {
    auto name = mountpoint.string();
    struct stat st {};
    if (::stat(mountpoint.c_str(), &st) != 0) {
        // ECONNABORTED: a killed daemon whose threads are still exiting.
        if (errno == ENOTCONN || errno == ECONNABORTED) {
            return make_error(ENOTCONN,
                              fmt::format("mountpoint {} is a dead mount (run fbfs umount "
                                          "{} first)",
                                          name, name));
        }
        if (errno == ENOENT) {
            return make_error(ENOENT, fmt::format("mountpoint {} does not exist (create it: "
                                                  "mkdir -p {})",
                                                  name, name));
        }
        return errno_error(fmt::format("cannot use mountpoint {}", name));
    }
    if (!S_ISDIR(st.st_mode)) {
        return make_error(ENOTDIR, fmt::format("mountpoint {} is not a directory (use an empty "
                                               "directory)",
                                               name));
    }
    if (auto mounted = find_mount(mountpoint); mounted && mounted->fstype == "fuse.fbfs") {
        return make_error(EBUSY, fmt::format("{} is already an fbfs mount (run fbfs umount {} "
                                             "first)",
                                             name, name));
    }
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(mountpoint.c_str()), ::closedir);
    if (!dir) {
        return errno_error(fmt::format("cannot read mountpoint {}", name));
    }
    while (dirent* entry = ::readdir(dir.get())) {
        std::string_view n = entry->d_name;
        if (n != "." && n != "..") {
            return make_error(ENOTEMPTY, fmt::format("mountpoint {} is not empty (use an empty "
                                                     "directory)",
                                                     name));
        }
    }
    return {};
}

Result<void> check_fuse_available() {
    if (auto device = check_fuse_device(); !device) {
        return device;
    }
    if (::geteuid() != 0) {
        if (auto fusermount = find_fusermount(); !fusermount) {
            return std::unexpected(fusermount.error());
        }
    }
    return {};
}

// The source must be a directory that neither is, nor holds, nor sits inside the mountpoint:
// each of those would make the mount serve itself.
Result<void> check_source(const fs::path& source, const fs::path& mountpoint) {
    if (auto lower = LowerLayer::open(source); !lower) {
        return std::unexpected(lower.error());
    }
    std::error_code ec;
    auto src = fs::weakly_canonical(source, ec).string() + "/";
    auto mnt = fs::weakly_canonical(mountpoint, ec).string() + "/";
    if (src.starts_with(mnt) || mnt.starts_with(src)) {
        return make_error(ELOOP, fmt::format("source {} and mountpoint {} overlap (the mount would "
                                             "contain itself): mount somewhere outside the "
                                             "source",
                                             source.string(), mountpoint.string()));
    }
    return {};
}

// Checks what can be checked before forking: the daemon reports the rest.
Result<void> check_request(const MountRequest& request) {
    if (auto ok = check_volume_name(request.volume); !ok) {
        return ok;
    }
    // The source first: one inside the mountpoint would otherwise read as "not empty".
    if (!request.source.empty()) {
        if (auto ok = check_source(request.source, request.mountpoint); !ok) {
            return ok;
        }
    }
    if (auto ok = check_mountpoint(request.mountpoint); !ok) {
        return ok;
    }
    if (auto ok = check_fuse_available(); !ok) {
        return ok;
    }
    // Opening the store here (and closing it before any fork: LMDB must not cross one) creates
    // a missing store and reports an unusable one while the user still reads stderr.
    if (auto store = Store::open(request.store, Store::Mode::create_if_missing); !store) {
        return std::unexpected(store.error());
    }
    if (auto pid = VolumeLock::holder(request.store, request.volume)) {
        return std::unexpected(VolumeLock::busy(request.store, request.volume, *pid,
                                                "unmount it with fbfs umount, or mount another "
                                                "--volume"));
    }
    return {};
}

// Removes staging files a killed daemon of this volume left behind (we hold the volume's lock).
void remove_stale_staging(const Store& store, VolumeId volume) {
    std::string prefix = fmt::format("staging-{}-", volume);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(store.pool().tmp_dir(), ec)) {
        if (entry.path().filename().string().starts_with(prefix)) {
            fs::remove(entry.path(), ec);
        }
    }
}

// Serves the volume in this process. `ready` is called once the mount is usable, with an empty
// string, or with the error that stopped it.
Result<void> serve(const MountRequest& request, const std::function<void(const Error*)>& ready) {
    auto store = Store::open(request.store, Store::Mode::create_if_missing);
    if (!store) {
        return std::unexpected(store.error());
    }
    auto lock = VolumeLock::acquire((*store)->root(), request.volume);
    if (!lock) {
        return std::unexpected(lock.error());
    }
    std::optional<LowerLayer> lower;
    if (!request.source.empty()) {
        auto opened = LowerLayer::open(request.source);
        if (!opened) {
            return std::unexpected(opened.error());
        }
        lower = std::move(*opened);
    }
    auto tree = VolumeTree::open(**store, request.volume, ::getuid(), ::getgid());
    if (!tree) {
        return std::unexpected(tree.error());
    }
    if (auto dropped = tree->drop_orphans(); !dropped) {
        return std::unexpected(dropped.error());
    } else if (*dropped > 0) {
        spdlog::info("removed {} files a previous daemon left open and unlinked", *dropped);
    }
    remove_stale_staging(**store, tree->id());
    // Objects a killed daemon freed but had not deleted yet.
    if (auto reaped = (*store)->remove_dead_objects(); !reaped) {
        return std::unexpected(reaped.error());
    }
    if (::geteuid() != 0) {
        auto fusermount = find_fusermount();
        if (!fusermount) {
            return std::unexpected(fusermount.error());
        }
        if (auto preferred = prefer_fusermount(*fusermount); !preferred) {
            return preferred;
        }
    }
    Filesystem filesystem(std::move(*tree), std::move(lower));
    ServeOptions options;
    options.mountpoint = request.mountpoint.string();
    options.fsname = fmt::format("fbfs:{}:{}", request.volume, ::getpid());
    options.allow_other = request.allow_other;
    options.debug = request.debug;
    auto server = FuseServer::mount(filesystem, options);
    if (!server) {
        return std::unexpected(server.error());
    }
    filesystem.attach_kernel(**server);
    // The watch sends the server's notifications: it stops before the server goes.
    struct StopWatching {
        Filesystem& filesystem;
        ~StopWatching() { filesystem.stop_watching(); }
    } stop_watching{filesystem};
    // `fbfs umount` signals before it unmounts: the walk below lets go of the mount.
    struct sigaction on_unmount {};
    on_unmount.sa_handler = [](int) { request_unmount_from_signal(); };
    on_unmount.sa_flags = SA_RESTART;
    ::sigaction(k_unmount_signal, &on_unmount, nullptr);
    // Fills the kernel's caches through the mount, which the loop below serves: the mount is
    // ready once the foreground part is done. Stopped and joined before the filesystem goes.
    std::jthread warmer([&](std::stop_token stop) {
        auto start = std::chrono::steady_clock::now();
        // Entries the warm-up hands the kernel are cached a day only once the source is watched.
        filesystem.wait_source_watched(std::chrono::seconds(10));
        auto warmed = warm_kernel_caches(
            request.mountpoint, stop, k_foreground_warm_up, [&] { ready(nullptr); },
            [&](ino_t ino) { filesystem.prefill(ino); }, filesystem.background_caller());
        std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        filesystem.warmed_up(warmed.directories, warmed.entries, took.count(), warmed.complete);
    });
    return (*server)->run();
}

void write_all(int fd, std::string_view text) {
    while (!text.empty()) {
        ssize_t n = ::write(fd, text.data(), text.size());
        if (n <= 0) {
            return;
        }
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

// The daemon: detached from the terminal and the caller, logging to <store>/log/<volume>.log.
[[noreturn]] void daemon_main(const MountRequest& request, int ready_fd) {
    ::setsid();
    if (::fork() > 0) {
        ::_exit(0);  // the daemon is the grandchild, so it is nobody's child to reap
    }
    auto log_dir = request.store / "log";
    ::mkdir(log_dir.c_str(), 0700);
    spdlog::drop_all();
    try {
        auto log = spdlog::basic_logger_mt("fbfs", (log_dir / (request.volume + ".log")).string());
        log->flush_on(spdlog::level::info);
        spdlog::set_default_logger(log);
    } catch (const spdlog::spdlog_ex& e) {
        write_all(ready_fd,
                  fmt::format("cannot write the daemon log in {}: {}", log_dir.string(), e.what()));
        ::_exit(1);
    }
    int null_fd = ::open("/dev/null", O_RDWR);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(null_fd, STDOUT_FILENO);
    ::dup2(null_fd, STDERR_FILENO);
    if (::chdir("/") != 0) {
        ::_exit(1);
    }
    auto served = serve(request, [&](const Error*) {
        write_all(ready_fd, "ok\n");
        ::close(ready_fd);
        ready_fd = -1;
    });
    if (!served) {
        spdlog::error("{}", served.error().message);
        if (ready_fd >= 0) {
            write_all(ready_fd, served.error().message);
        }
    }
    spdlog::shutdown();
    ::_exit(served ? 0 : 1);
}

Result<void> mount_in_background(const MountRequest& request) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        return errno_error("pipe");
    }
    pid_t child = ::fork();
    if (child < 0) {
        return errno_error("fork");
    }
    if (child == 0) {
        ::close(pipe_fds[0]);
        daemon_main(request, pipe_fds[1]);
    }
    ::close(pipe_fds[1]);
    std::string message;
    char buf[512];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            break;
        }
        message.append(buf, static_cast<std::size_t>(n));
    }
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    if (message == "ok\n") {
        return {};
    }
    if (message.empty()) {
        message = fmt::format("the fbfs daemon exited while mounting {} (see {})",
                              request.mountpoint.string(),
                              (request.store / "log" / (request.volume + ".log")).string());
    }
    return make_error(EIO, message);
}

bool process_gone(pid_t pid) {
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string line;
    if (!std::getline(stat, line)) {
        return true;
    }
    auto close = line.rfind(')');
    return close == std::string::npos || close + 2 >= line.size() || line[close + 2] == 'Z';
}

// Runs a program (in `cwd` if given) and returns its exit status, 128 + signal if killed, or -1
// if it could not be started. With `errors`, its stderr is collected there instead of shown.
int run_program(const std::vector<std::string>& argv, const fs::path& cwd = {},
                std::string* errors = nullptr) {
    int err_pipe[2] = {-1, -1};
    if (errors != nullptr && ::pipe2(err_pipe, O_CLOEXEC) != 0) {
        return -1;
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        std::signal(SIGINT, SIG_DFL);
        std::signal(SIGTERM, SIG_DFL);
        if (errors != nullptr) {
            ::dup2(err_pipe[1], STDERR_FILENO);
        }
        if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) {
            std::fprintf(stderr, "fbfs: cannot enter %s: %s\n", cwd.c_str(), std::strerror(errno));
            ::_exit(126);
        }
        std::vector<char*> args;
        for (const auto& a : argv) {
            args.push_back(const_cast<char*>(a.c_str()));
        }
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        std::fprintf(stderr, "fbfs: cannot run %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    if (errors != nullptr) {
        ::close(err_pipe[1]);
        char buf[512];
        for (ssize_t n; pid > 0 && (n = ::read(err_pipe[0], buf, sizeof buf)) != 0;) {
            if (n < 0 && errno != EINTR) {
                break;
            }
            errors->append(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
        }
        ::close(err_pipe[0]);
    }
    if (pid < 0) {
        return -1;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Takes the mount away from the kernel: umount2 as root, else the setuid fusermount3 (never an
// unprivileged copy earlier on PATH). `dead`: nobody serves it, so detach it whatever holds it.
Result<void> detach_mount(const fs::path& mountpoint, bool dead) {
    auto busy = [&] {
        return make_error(EBUSY, fmt::format("could not unmount {}: it is busy (close the files "
                                             "and shells using it, then try again)",
                                             mountpoint.string()));
    };
    if (::geteuid() == 0) {
        if (::umount2(mountpoint.c_str(), dead ? MNT_DETACH : 0) != 0) {
            return errno == EBUSY
                       ? busy()
                       : errno_error(fmt::format("could not unmount {}", mountpoint.string()));
        }
        return {};
    }
    auto fusermount = find_fusermount();
    if (!fusermount) {
        return std::unexpected(fusermount.error());
    }
    std::vector<std::string> command{fusermount->string(), "-u"};
    if (dead) {
        command.push_back("-z");
    }
    command.push_back(mountpoint.string());
    std::string said;
    int status = run_program(command, {}, &said);
    if (status == 0) {
        return {};
    }
    if (said.find("busy") != std::string::npos) {
        return busy();
    }
    while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) {
        said.pop_back();
    }
    if (said.find("/etc/mtab") != std::string::npos) {
        said += " (fusermount3 needs it: as root, ln -s ../proc/self/mounts /etc/mtab)";
    }
    return make_error(EIO, fmt::format("could not unmount {}: {}", mountpoint.string(),
                                       said.empty() ? fmt::format("{} exited with status {}",
                                                                  fusermount->string(), status)
                                                    : said));
}

}  // namespace

Result<void> mount_volume(const MountRequest& request_in) {
    MountRequest request = request_in;
    request.mountpoint = fs::absolute(request.mountpoint).lexically_normal();
    request.store = fs::absolute(request.store).lexically_normal();
    if (!request.source.empty()) {
        request.source = fs::absolute(request.source).lexically_normal();
    }
    if (auto ok = check_request(request); !ok) {
        return ok;
    }
    if (!request.foreground) {
        return mount_in_background(request);
    }
    return serve(request, [](const Error*) {});
}

Result<void> unmount_volume(const fs::path& mountpoint_in) {
    fs::path mountpoint = fs::absolute(mountpoint_in).lexically_normal();
    auto entry = find_mount(mountpoint);
    if (!entry || entry->fstype != "fuse.fbfs") {
        return make_error(EINVAL, fmt::format("{} is not an fbfs mount (nothing to unmount)",
                                              mountpoint.string()));
    }
    struct stat st {};
    bool dead =
        ::stat(mountpoint.c_str(), &st) != 0 && (errno == ENOTCONN || errno == ECONNABORTED);
    auto pid = daemon_pid(*entry);
    if (pid && !dead) {
        ::kill(*pid, k_unmount_signal);  // the daemon's warm-up lets go of the mount
    }
    // Busy for a moment while the warm-up closes the directory it lists; busy for longer is
    // someone else's open file.
    auto detached = detach_mount(mountpoint, dead);
    for (int tries = 0; !detached && detached.error().code == EBUSY && tries < 40; ++tries) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        detached = detach_mount(mountpoint, dead);
    }
    if (!detached) {
        return detached;
    }
    // The daemon saves what is left and exits once the kernel tells it the mount is gone.
    if (pid) {
        while (!process_gone(*pid)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }
    return {};
}

Result<int> run_in_mount(const MountRequest& request, const std::vector<std::string>& command) {
    MountRequest background = request;
    background.foreground = false;
    if (auto mounted = mount_volume(background); !mounted) {
        return std::unexpected(mounted.error());
    }
    // The command gets the terminal's signals; this process waits and then unmounts.
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);
    int status = run_program(command, fs::absolute(request.mountpoint));
    auto unmounted = unmount_volume(request.mountpoint);
    if (!unmounted) {
        return std::unexpected(unmounted.error());
    }
    return status;
}

}  // namespace fbfs
