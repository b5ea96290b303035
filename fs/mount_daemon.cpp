#include "fs/mount_daemon.h"

#include <fcntl.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string_view>
#include <thread>

#include "fs/filesystem.h"
#include "fs/fuse_device.h"
#include "fs/fuse_server.h"
#include "fs/kernel_warmer.h"
#include "fs/lower_layer.h"
#include "fs/process.h"
#include "fs/remote_objects.h"
#include "store/base/unique_fd.h"
#include "store/meta/object_reads.h"
#include "store/meta/store.h"
#include "store/meta/volume_gc.h"
#include "store/meta/volume_lock.h"
#include "store/meta/volume_times.h"
#include "store/meta/volume_tree.h"
#include "store/remote/http_cas.h"
#include "store/remote/origin_check.h"

namespace fbfs {

namespace fs = std::filesystem;

namespace {

// How long a new mount's warm-up may delay `fbfs mount`; the rest goes on in the background.
constexpr std::chrono::milliseconds k_foreground_warm_up{1000};
// How long --max-store-size's questions to the remote may each wait (one try, no retries), and
// how many objects it asks about at most: `fbfs umount` waits k_daemon_exit_limit for the daemon.
constexpr std::chrono::seconds k_gc_remote_limit{5};
constexpr std::size_t k_gc_remote_objects = 2048;
// How many files of dead objects the daemon keeps to fill as staging files (64 KiB each at most).
constexpr std::size_t k_spare_files = 32;

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

// Records in the store that `request`'s volume was mounted (or unmounted) now; when the mount
// ends, applies --max-store-size. Failures are logged: the mount goes on.
void note_mount(Store& store, const MountRequest& request, bool starts) {
    if (auto noted = note_volume_mounted(store, request.volume, now_ns()); !noted) {
        spdlog::warn("cannot record when volume '{}' was mounted: {}", request.volume,
                     noted.error().message);
    }
    if (starts || !request.max_store_size) {
        return;
    }
    GcPolicy policy;
    policy.max_bytes = request.max_store_size;
    policy.keep = {request.volume};
    // `fbfs umount` waits k_daemon_exit_limit for the daemon: the question to the remote must
    // end well within it, answered or not (then no pooled object goes).
    auto options = RemoteOptions::from_environment();
    if (options) {
        options->attempts = 1;
        options->connect_timeout =
            std::min(options->connect_timeout, std::chrono::milliseconds(k_gc_remote_limit));
        options->stall_timeout = std::min(options->stall_timeout, k_gc_remote_limit);
    }
    auto check = options ? origin_missing_check(store, std::move(*options))
                         : Result<RemoteMissingCheck>(std::unexpected(options.error()));
    if (check) {
        policy.remote_missing = std::move(*check);
        policy.max_fetchable = k_gc_remote_objects;
    } else {
        spdlog::warn("--max-store-size: drops no pooled object: {}", check.error().message);
    }
    auto report = collect_garbage(store, policy, now_ns());
    if (!report) {
        spdlog::error("--max-store-size: {}", report.error().message);
        return;
    }
    if (report->fetchable.objects > 0) {
        spdlog::info("--max-store-size: dropped {} pooled objects ({} bytes) the remote holds",
                     report->fetchable.objects, report->fetchable.bytes);
    }
    if (!report->remote_error.empty()) {
        spdlog::warn("--max-store-size: dropped no pooled object: cannot ask the remote ({})",
                     report->remote_error);
    }
    if (report->fetchable_capped) {
        spdlog::warn("--max-store-size: more than {} pooled objects the remote holds would have "
                     "to go; fbfs gc --max-size drops the rest",
                     k_gc_remote_objects);
    }
    for (const auto& v : report->dropped) {
        spdlog::info("--max-store-size: dropped volume '{}' ({} objects, {} bytes)", v.name,
                     v.freed.objects, v.freed.bytes);
    }
    if (report->bytes_after > *request.max_store_size) {
        spdlog::warn(
            "--max-store-size: the store holds {} bytes, over its bound of {}: the rest "
            "belongs to volumes in use",
            report->bytes_after, *request.max_store_size);
    }
}

// Writes the objects read through the mount since the last time (object_reads.h); a failure is
// logged and the ids wait for the next time.
void flush_reads(Store& store, ReadLog& reads) {
    if (auto flushed = reads.flush(store, now_ns()); !flushed) {
        spdlog::warn("cannot record which objects were read: {}", flushed.error().message);
    }
}

}  // namespace

Result<void> serve_volume(const MountRequest& request, const std::function<void()>& ready) {
    TRY_ASSIGN(auto store, Store::open(request.store, Store::Mode::create_if_missing));
    TRY_ASSIGN(auto lock, VolumeLock::acquire(store->root(), request.volume));  // held to the end
    TRY(attach_remote(*store, request.remote));
    auto reads = std::make_shared<ReadLog>();
    store->set_read_observer(reads);
    std::optional<LowerLayer> lower;
    if (!request.source.empty()) {
        TRY_ASSIGN(auto opened, LowerLayer::open(request.source));
        lower = std::move(opened);
    }
    TRY_ASSIGN(auto tree, VolumeTree::open(*store, request.volume, ::getuid(), ::getgid()));
    TRY_ASSIGN(auto dropped, tree.drop_orphans());
    if (dropped > 0) {
        spdlog::info("removed {} files a previous daemon left open and unlinked", dropped);
    }
    remove_stale_staging(*store, tree.id());
    // Objects a killed fetch (this mount's or an eager pull's) was receiving.
    remove_abandoned_fetches(store->pool());
    // Objects a killed daemon freed but had not deleted yet.
    TRY(store->remove_dead_objects());
    // From here on, dead objects' files become this volume's staging files (removed as stale
    // ones if the daemon is killed): a rewrite then allocates no inode.
    store->pool().keep_spares(fmt::format("staging-{}-spare-", tree.id()), k_spare_files);
    if (::geteuid() != 0) {
        TRY_ASSIGN(auto fusermount, find_fusermount());
        TRY(prefer_fusermount(fusermount));
    }
    Filesystem filesystem(std::move(tree), std::move(lower));
    ServeOptions options;
    options.mountpoint = request.mountpoint.string();
    options.fsname = fmt::format("fbfs:{}:{}", request.volume, ::getpid());
    options.allow_other = request.allow_other;
    options.debug = request.debug;
    TRY_ASSIGN(auto server, FuseServer::mount(filesystem, options));
    filesystem.attach_kernel(*server);
    note_mount(*store, request, true);
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
            request.mountpoint, stop, k_foreground_warm_up, [&] { ready(); },
            [&](ino_t ino) { filesystem.prefill(ino); }, filesystem.background_caller());
        std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        filesystem.warmed_up(warmed.directories, warmed.entries, took.count(), warmed.complete);
    });
    // Which objects the mount reads, written every k_read_flush_interval and at the end.
    std::jthread read_flusher([&](std::stop_token stop) {
        std::mutex mutex;
        std::condition_variable_any wake;
        std::unique_lock held(mutex);
        while (!wake.wait_for(held, stop, k_read_flush_interval, [] { return false; }) &&
               !stop.stop_requested()) {
            flush_reads(*store, *reads);
        }
    });
    auto served = server->run();
    read_flusher.request_stop();
    read_flusher.join();
    flush_reads(*store, *reads);
    note_mount(*store, request, false);
    return served;
}

namespace {

void write_all(int fd, std::string_view text) {
    while (!text.empty()) {
        ssize_t n = ::write(fd, text.data(), text.size());
        if (n <= 0) {
            return;
        }
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

// Puts /dev/null on the daemon's standard streams and makes / its working directory: it must
// hold neither the caller's terminal or pipes (whoever reads `fbfs mount`'s output would wait for
// the daemon's end) nor a directory that someone may want to unmount.
Result<void> detach_from_caller() {
    UniqueFd null_fd(::open("/dev/null", O_RDWR));
    if (!null_fd) {
        int code = errno;
        return make_error(code, fmt::format("the fbfs daemon cannot open /dev/null: {} (it must "
                                            "be the null device: mknod -m 0666 /dev/null c 1 3)",
                                            std::strerror(code)));
    }
    for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
        if (::dup2(null_fd.get(), fd) < 0) {
            return errno_error("the fbfs daemon cannot put /dev/null on its standard streams");
        }
    }
    if (null_fd.get() <= STDERR_FILENO) {
        null_fd.release();  // it is one of them
    }
    if (::chdir("/") != 0) {
        return errno_error("the fbfs daemon cannot enter /");
    }
    return {};
}

// Tells the waiting `fbfs mount` why the daemon stops, and stops it.
[[noreturn]] void fail_to_start(int ready_fd, const std::string& message) {
    write_all(ready_fd, message);
    ::_exit(1);
}

// The daemon: detached from the terminal and the caller, logging to <store>/log/<volume>.log.
[[noreturn]] void daemon_main(const MountRequest& request, int ready_fd) {
    ::setsid();
    pid_t daemon = ::fork();
    if (daemon < 0) {
        fail_to_start(ready_fd, fork_error("the fbfs daemon").message);
    }
    if (daemon > 0) {
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
        fail_to_start(ready_fd, fmt::format("cannot write the daemon log in {}: {}",
                                            log_dir.string(), e.what()));
    }
    if (auto detached = detach_from_caller(); !detached) {
        spdlog::error("{}", detached.error().message);
        fail_to_start(ready_fd, detached.error().message);
    }
    auto served = serve_volume(request, [&] {
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

}  // namespace

Result<void> start_daemon(const MountRequest& request) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        return errno_error("cannot start the fbfs daemon: pipe");
    }
    UniqueFd from_daemon(pipe_fds[0]);
    UniqueFd to_caller(pipe_fds[1]);
    pid_t child = ::fork();
    if (child < 0) {
        return std::unexpected(fork_error("the fbfs daemon"));
    }
    if (child == 0) {
        from_daemon.reset();
        daemon_main(request, to_caller.release());
    }
    to_caller.reset();
    std::string message;
    char buf[512];
    for (ssize_t n; (n = ::read(from_daemon.get(), buf, sizeof buf)) != 0;) {
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            break;
        }
        message.append(buf, static_cast<std::size_t>(n));
    }
    from_daemon.reset();
    // The child exits as soon as it has forked the daemon (or failed to).
    while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
    }
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

}  // namespace fbfs
