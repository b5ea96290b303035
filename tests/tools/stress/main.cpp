// fbfs_stress: a seeded, parallel file-system exerciser in the manner of fsstress, whose end
// state is a function of its arguments. Each of the -p processes works only in DIR/p<i>, so the
// tree it leaves is the same on any filesystem that behaves like ext4, however the processes
// interleave; each prints a digest of every outcome it saw. --populate makes the seeded starting
// tree (a --source for an overlay) instead.
//
//   fbfs_stress [-p PROCS] [-n OPS] [-s SEED] [-f FILES] [-m MIX] [-o OP=WEIGHT]...
//               [-l LOGDIR] [--populate] DIR
//
// Prints one line per process, then "digest <hex>" (all processes') and "elapsed <s>". Exit
// status 0 when every process ran its operations (failed operations are outcomes, in the
// digest), 1 on bad arguments, 2 if a process could not start or died.
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/tools/stress/populate.h"
#include "tests/tools/stress/worker.h"

namespace {

using namespace fbfs::stress;

struct Options {
    unsigned procs = 4;
    unsigned ops = 1000;
    std::uint64_t seed = 1;
    std::size_t files = 5000;
    Mix mix;
    std::string log_dir;
    bool populate = false;
    std::string dir;
};

[[noreturn]] void refuse(const std::string& message) {
    std::fprintf(stderr,
                 "fbfs_stress: %s (see the usage at the top of tests/tools/stress/main.cpp)\n",
                 message.c_str());
    std::exit(1);
}

unsigned long long number(const char* text, const char* what) {
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        refuse(std::string(what) + " must be a number, not '" + text + "'");
    }
    return n;
}

void set_weight(Mix& mix, const std::string& spec) {
    auto eq = spec.find('=');
    std::string name = spec.substr(0, eq);
    for (std::size_t i = 0; i < k_op_count && eq != std::string::npos; ++i) {
        if (op_name(static_cast<Op>(i)) == name) {
            mix.weights[i] = static_cast<unsigned>(number(spec.c_str() + eq + 1, "a weight"));
            return;
        }
    }
    refuse("-o takes OP=WEIGHT with an operation such as creat or mmap_write, not '" + spec + "'");
}

Options parse(int argc, char** argv) {
    Options o;
    named_mix("fsstress", o.mix);
    static const option k_long[] = {{"populate", no_argument, nullptr, 'P'}, {}};
    std::vector<std::string> weights;
    for (int c; (c = ::getopt_long(argc, argv, "p:n:s:f:m:o:l:", k_long, nullptr)) != -1;) {
        switch (c) {
            case 'p':
                o.procs = static_cast<unsigned>(number(optarg, "-p"));
                break;
            case 'n':
                o.ops = static_cast<unsigned>(number(optarg, "-n"));
                break;
            case 's':
                o.seed = number(optarg, "-s");
                break;
            case 'f':
                o.files = number(optarg, "-f");
                break;
            case 'm':
                if (!named_mix(optarg, o.mix)) {
                    refuse(std::string("-m takes fsstress, metadata or none, not '") + optarg +
                           "'");
                }
                break;
            case 'o':
                weights.emplace_back(optarg);
                break;
            case 'l':
                o.log_dir = optarg;
                break;
            case 'P':
                o.populate = true;
                break;
            default:
                refuse("unknown option");
        }
    }
    for (const auto& w : weights) {
        set_weight(o.mix, w);
    }
    if (optind + 1 != argc) {
        refuse("give exactly one directory to work in");
    }
    if (o.procs == 0 || o.procs > 256) {
        refuse("-p must be between 1 and 256");
    }
    o.dir = argv[optind];
    return o;
}

// The child's work: populate or stress DIR/p<index>. Returns false, with why in `line`, if it
// could not; else its summary line.
bool work(const Options& o, unsigned index, std::string& line) {
    std::string sub = o.dir + "/p" + std::to_string(index);
    auto cannot = [&](const std::string& what) {
        line = "cannot " + what + ": " + std::strerror(errno);
        return false;
    };
    if (::mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST) {
        return cannot("create " + sub);
    }
    if (::chdir(sub.c_str()) != 0) {
        return cannot("enter " + sub);
    }
    ::umask(022);
    std::size_t max_files = o.files / o.procs;
    if (o.populate) {
        return populate(o.seed, index, max_files / 2, line);
    }
    WorkerOptions wo{o.seed, index, max_files, o.mix, nullptr};
    std::FILE* log = nullptr;
    if (!o.log_dir.empty()) {
        std::string path = o.log_dir + "/p" + std::to_string(index) + ".log";
        log = std::fopen(path.c_str(), "w");
        if (log == nullptr) {
            return cannot("write " + path);
        }
        wo.log = log;
    }
    Worker worker(wo);
    if (!worker.start()) {
        return cannot("read what " + sub + " holds");
    }
    worker.run(o.ops);
    if (log != nullptr) {
        std::fclose(log);
    }
    line = worker.summary();
    return true;
}

struct Child {
    pid_t pid = -1;
    int out = -1;  // its summary line comes through this pipe
};

Child start(const Options& o, unsigned index) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        std::perror("fbfs_stress: pipe");
        std::exit(2);
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("fbfs_stress: fork");
        std::exit(2);
    }
    if (pid == 0) {
        std::string line;
        bool ok = work(o, index, line);
        line += "\n";
        ok = ::write(fds[1], line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ok;
        ::_exit(ok ? 0 : 3);
    }
    ::close(fds[1]);
    return Child{pid, fds[0]};
}

std::string read_all(int fd) {
    std::string text;
    char buf[512];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
        text.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    auto began = std::chrono::steady_clock::now();
    std::vector<Child> children;
    for (unsigned i = 0; i < o.procs; ++i) {
        children.push_back(start(o, i));
    }
    Digest all;
    int status = 0;
    for (unsigned i = 0; i < o.procs; ++i) {
        std::string line = read_all(children[i].out);
        int child_status = 0;
        ::waitpid(children[i].pid, &child_status, 0);
        if (!WIFEXITED(child_status) || WEXITSTATUS(child_status) != 0) {
            status = 2;
            line = line.empty() ? "died with status " + std::to_string(child_status) + "\n" : line;
        }
        all.add(line);
        std::printf("p%u: %s", i, line.c_str());
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    std::printf("digest %016llx\nelapsed %.3f\n", static_cast<unsigned long long>(all.value()),
                seconds);
    return status;
}
