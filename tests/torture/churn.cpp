// fbfs_churn: the seeded file-churn workload that the crash campaign (daemon_kill_test.cpp) runs
// on a mount and then kills the daemon under.
//
//   fbfs_churn ROOT LOGDIR SEED PROCESSES THREADS [OPS]
//
// PROCESSES processes of THREADS threads each; worker p-t owns ROOT/w<p>-<t> (it makes the
// directory, or, if it exists, e.g. from an overlay's source, takes the files in it as its
// starting state) and nothing else, so each worker's operations happen in the order it logs
// them. A worker writes new files through a temp name and renames them into place (as compilers
// do), rewrites files in place, patches, appends, truncates, renames, unlinks, fsyncs and reads
// back, sizes from empty to 8 MiB, and keeps every file's bytes in memory. It stops after OPS
// operations (default: no limit) or at the first failure.
//
// Each worker appends to LOGDIR/w<p>-<t>.log, one write(2) per line, paths relative to ROOT:
//   begin mkdir DIR | begin write PATH SHA256 SIZE | begin patch PATH SHA256 SIZE
//   begin rename FROM TO | begin unlink PATH      before it starts an operation;
//   done                                          only after the operation's last call (close,
//                                                 rename, unlink, mkdir) returned success;
//   fail ERRNO NS WHAT                            when a call failed (at NS on CLOCK_MONOTONIC),
//                                                 and the worker stopped;
//   mismatch PATH                                 a read gave other bytes than were written.
// `write` makes PATH hold exactly the given content, whether it existed or not; `patch` changes
// a file that exists (pwrite, append, truncate) into the given content. The checker
// (churn_log.h) replays the log to know what each path must hold.
//
// Exit status: 0 if every worker finished or stopped at a failed call; 3 if any read back other
// bytes than it wrote; 2 on bad arguments.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "store/base/object_id.h"
#include "store/base/unique_fd.h"

namespace {

namespace fs = std::filesystem;
using fbfs::UniqueFd;

constexpr int k_names = 24;  // f0..f23: few enough that renames often replace a file

// A failed call: the worker logs it and stops.
struct Failed {
    int error;
    std::string what;
};

class Worker {
public:
    Worker(fs::path root, std::string dir, const fs::path& log, std::uint64_t seed)
        : m_root(std::move(root)), m_dir(std::move(dir)), m_random(seed) {
        m_log.reset(::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    }

    // Runs up to `ops` operations (0: no limit). Returns false if a read gave wrong bytes.
    bool run(std::uint64_t ops) {
        try {
            start();
            for (std::uint64_t i = 0; ops == 0 || i < ops; ++i) {
                if (!step()) {
                    return false;
                }
            }
        } catch (const Failed& failed) {
            log_failure(failed);
        } catch (const fs::filesystem_error& e) {
            log_failure(Failed{e.code().value(), "list " + m_dir});
        }
        return true;
    }

private:
    static std::string fmt(const char* format, auto... args) {
        char line[512];
        std::snprintf(line, sizeof line, format, args...);
        return line;
    }

    void log_failure(const Failed& failed) {
        timespec now{};
        ::clock_gettime(CLOCK_MONOTONIC, &now);
        log(fmt("fail %d %lld %s", failed.error,
                static_cast<long long>(now.tv_sec) * 1000000000 + now.tv_nsec,
                failed.what.c_str()));
    }

    void log(const std::string& line) {
        std::string text = line + "\n";
        if (::write(m_log.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
            std::perror("fbfs_churn: writing the log");
            std::_Exit(2);
        }
    }

    static void check(long rc, const std::string& what) {
        if (rc < 0) {
            throw Failed{errno, what};
        }
    }

    fs::path abs(const std::string& rel) const { return m_root / rel; }
    std::string rel(const std::string& name) const { return m_dir + "/" + name; }

    void start() {
        if (fs::is_directory(abs(m_dir))) {
            for (const auto& entry : fs::directory_iterator(abs(m_dir))) {
                std::string name = entry.path().filename().string();
                m_files[name] = read(rel(name));
            }
            return;
        }
        log("begin mkdir " + m_dir);
        check(::mkdir(abs(m_dir).c_str(), 0755), "mkdir " + m_dir);
        log("done");
    }

    std::string read(const std::string& path) {
        UniqueFd fd(::open(abs(path).c_str(), O_RDONLY | O_CLOEXEC));
        check(fd.get(), "open " + path);
        std::string out;
        char buffer[1 << 16];
        for (;;) {
            ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
            check(n, "read " + path);
            if (n == 0) {
                return out;
            }
            out.append(buffer, static_cast<std::size_t>(n));
        }
    }

    std::size_t pick_size() {
        auto roll = m_random() % 100;
        if (roll < 70) {
            return m_random() % (16 << 10);
        }
        if (roll < 95) {
            return (16 << 10) + m_random() % (496 << 10);
        }
        return (1 << 20) + m_random() % (7 << 20);
    }

    std::string bytes(std::size_t size) {
        std::string out(size, '\0');
        for (std::size_t i = 0; i < size; i += 8) {
            std::uint64_t word = m_random();
            std::memcpy(out.data() + i, &word, std::min<std::size_t>(8, size - i));
        }
        return out;
    }

    std::string any_name() { return "f" + std::to_string(m_random() % k_names); }

    std::optional<std::string> existing() {
        if (m_files.empty()) {
            return std::nullopt;
        }
        auto it = m_files.begin();
        std::advance(it, static_cast<long>(m_random() % m_files.size()));
        return it->first;
    }

    static std::string digest(const std::string& content) {
        return fbfs::ObjectId::of(content).hex();
    }

    // Writes `content` in chunks of random size; fsyncs if asked; closes. Throws on a failure.
    void write_fd(UniqueFd fd, const std::string& path, const std::string& content, bool sync) {
        check(fd.get(), "open " + path);
        for (std::size_t at = 0; at < content.size();) {
            std::size_t chunk = std::min(content.size() - at, 1 + m_random() % (256 << 10));
            ssize_t n = ::write(fd.get(), content.data() + at, chunk);
            check(n, "write " + path);
            at += static_cast<std::size_t>(n);
        }
        if (sync) {
            check(::fsync(fd.get()), "fsync " + path);
        }
        check(::close(fd.release()), "close " + path);
    }

    // Makes `name` hold `content`: through a temp name and a rename, or in place with O_TRUNC.
    void write(const std::string& name, const std::string& content, bool in_place) {
        std::string target = rel(name);
        std::string path = in_place ? target : rel(".tmp-" + std::to_string(m_temps++));
        log(fmt("begin write %s %s %zu", path.c_str(), digest(content).c_str(), content.size()));
        int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (in_place ? 0 : O_EXCL);
        write_fd(UniqueFd(::open(abs(path).c_str(), flags, 0644)), path, content,
                 m_random() % 8 == 0);
        log("done");
        if (!in_place) {
            log(fmt("begin rename %s %s", path.c_str(), target.c_str()));
            check(::rename(abs(path).c_str(), abs(target).c_str()), "rename " + path);
            log("done");
        }
        m_files[name] = content;
    }

    // Changes an existing file with one pwrite, an append or a truncate.
    void patch(const std::string& name) {
        std::string path = rel(name);
        std::string content = m_files[name];
        auto how = m_random() % 3;
        std::string piece = bytes(1 + m_random() % (64 << 10));
        std::size_t at = how == 0 ? m_random() % (content.size() + 1) : content.size();
        if (how == 2) {
            std::size_t size = m_random() % (content.size() + (32 << 10) + 1);
            content.resize(size, '\0');
        } else {
            content.resize(std::max(content.size(), at + piece.size()), '\0');
            content.replace(at, piece.size(), piece);
        }
        log(fmt("begin patch %s %s %zu", path.c_str(), digest(content).c_str(), content.size()));
        if (how == 2) {
            check(::truncate(abs(path).c_str(), static_cast<off_t>(content.size())),
                  "truncate " + path);
        } else {
            UniqueFd fd(::open(abs(path).c_str(), O_WRONLY | O_CLOEXEC | (how ? O_APPEND : 0)));
            check(fd.get(), "open " + path);
            ssize_t n =
                how ? ::write(fd.get(), piece.data(), piece.size())
                    : ::pwrite(fd.get(), piece.data(), piece.size(), static_cast<off_t>(at));
            check(n, "write " + path);
            if (static_cast<std::size_t>(n) != piece.size()) {
                throw Failed{EIO, "short write " + path};
            }
            check(::close(fd.release()), "close " + path);
        }
        log("done");
        m_files[name] = std::move(content);
    }

    void rename(const std::string& from, const std::string& to) {
        log("begin rename " + rel(from) + " " + rel(to));
        check(::rename(abs(rel(from)).c_str(), abs(rel(to)).c_str()), "rename " + rel(from));
        log("done");
        m_files[to] = std::move(m_files[from]);
        m_files.erase(from);
    }

    void unlink(const std::string& name) {
        log("begin unlink " + rel(name));
        check(::unlink(abs(rel(name)).c_str()), "unlink " + rel(name));
        log("done");
        m_files.erase(name);
    }

    // One operation. Returns false if a read gave other bytes than were written.
    bool step() {
        auto roll = m_random() % 100;
        auto some = existing();
        if (roll < 35 || !some) {
            write(any_name(), bytes(pick_size()), false);
        } else if (roll < 50) {
            write(*some, bytes(pick_size()), true);
        } else if (roll < 65) {
            patch(*some);
        } else if (roll < 77) {
            std::string to = any_name();
            if (to != *some) {
                rename(*some, to);
            }
        } else if (roll < 87) {
            unlink(*some);
        } else if (read(rel(*some)) != m_files[*some]) {
            log("mismatch " + rel(*some));
            return false;
        }
        return true;
    }

    fs::path m_root;
    std::string m_dir;
    std::mt19937_64 m_random;
    fbfs::UniqueFd m_log;
    std::map<std::string, std::string> m_files;  // what each of this worker's files holds
    std::uint64_t m_temps = 0;
};

// Runs `threads` workers in this process; returns the exit status.
int run_process(const fs::path& root, const fs::path& logs, std::uint64_t seed, int process,
                int threads, std::uint64_t ops) {
    std::atomic<bool> mismatch = false;
    std::vector<std::thread> running;
    for (int t = 0; t < threads; ++t) {
        running.emplace_back([&, t] {
            std::string name = "w" + std::to_string(process) + "-" + std::to_string(t);
            Worker worker(root, name, logs / (name + ".log"),
                          seed * 1000003 + static_cast<std::uint64_t>(process * 1000 + t));
            if (!worker.run(ops)) {
                mismatch = true;
            }
        });
    }
    for (auto& thread : running) {
        thread.join();
    }
    return mismatch ? 3 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 6 || argc > 7) {
        std::fprintf(stderr, "usage: fbfs_churn ROOT LOGDIR SEED PROCESSES THREADS [OPS]\n");
        return 2;
    }
    fs::path root = argv[1];
    fs::path logs = argv[2];
    std::uint64_t seed = std::strtoull(argv[3], nullptr, 10);
    int processes = std::atoi(argv[4]);
    int threads = std::atoi(argv[5]);
    std::uint64_t ops = argc == 7 ? std::strtoull(argv[6], nullptr, 10) : 0;
    if (processes < 1 || threads < 1) {
        std::fprintf(stderr, "fbfs_churn: PROCESSES and THREADS must be at least 1\n");
        return 2;
    }
    std::vector<pid_t> children;
    for (int p = 0; p < processes; ++p) {
        pid_t pid = ::fork();
        if (pid < 0) {
            std::perror("fbfs_churn: fork");
            return 2;
        }
        if (pid == 0) {
            std::_Exit(run_process(root, logs, seed, p, threads, ops));
        }
        children.push_back(pid);
    }
    int worst = 0;
    for (pid_t child : children) {
        int status = 0;
        while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        worst = std::max(worst, code);
    }
    return worst;
}
