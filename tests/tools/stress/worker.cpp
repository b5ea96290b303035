#include "tests/tools/stress/worker.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace fbfs::stress {

namespace {

constexpr std::array<std::string_view, k_op_count> k_op_names = {
    "creat",     "write",   "append", "truncate", "rename",   "link",       "unlink",
    "symlink",   "mkdir",   "rmdir",  "chmod",    "utimes",   "mmap_write", "fsync",
    "fdatasync", "readdir", "stat",   "read",     "readlink",
};

constexpr std::size_t k_max_depth = 6;

// 0 if `rc` says the call worked, else errno.
int error_of(long rc) {
    return rc < 0 ? errno : 0;
}

// A file descriptor closed on scope exit.
struct Fd {
    explicit Fd(int fd) : value(fd) {}
    ~Fd() {
        if (value >= 0) {
            ::close(value);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    // close(2)'s own outcome: where fbfs commits a file. 0 or errno.
    int close() {
        int rc = ::close(value);
        value = -1;
        return error_of(rc);
    }
    int value;
};

}  // namespace

std::string_view op_name(Op op) {
    return k_op_names[static_cast<std::size_t>(op)];
}

bool named_mix(std::string_view name, Mix& mix) {
    auto set = [&mix](Op op, unsigned weight) {
        mix.weights[static_cast<std::size_t>(op)] = weight;
    };
    mix.weights.fill(0);
    if (name == "fsstress") {
        // fsstress's default frequencies, folded onto these operations (its direct-I/O, writev
        // and mknod variants count as their plain kinds).
        for (auto [op, weight] : {std::pair{Op::creat, 4u},
                                  {Op::write, 8},
                                  {Op::append, 2},
                                  {Op::truncate, 2},
                                  {Op::rename, 2},
                                  {Op::link, 1},
                                  {Op::unlink, 1},
                                  {Op::symlink, 2},
                                  {Op::mkdir, 2},
                                  {Op::rmdir, 1},
                                  {Op::chmod, 3},
                                  {Op::utimes, 1},
                                  {Op::mmap_write, 2},
                                  {Op::fsync, 1},
                                  {Op::fdatasync, 1},
                                  {Op::readdir, 1},
                                  {Op::stat, 1},
                                  {Op::read, 5},
                                  {Op::readlink, 1}}) {
            set(op, weight);
        }
        mix.creat_write_percent = 50;
        mix.max_write = 16 * 1024;
        return true;
    }
    if (name == "none") {
        return true;  // for -o OP=WEIGHT to pick the operations
    }
    if (name == "metadata") {
        for (auto [op, weight] : {std::pair{Op::creat, 8u},
                                  {Op::write, 2},
                                  {Op::append, 1},
                                  {Op::truncate, 1},
                                  {Op::rename, 5},
                                  {Op::link, 2},
                                  {Op::unlink, 4},
                                  {Op::symlink, 3},
                                  {Op::mkdir, 3},
                                  {Op::rmdir, 2},
                                  {Op::chmod, 3},
                                  {Op::utimes, 3},
                                  {Op::fsync, 1},
                                  {Op::fdatasync, 1},
                                  {Op::readdir, 2},
                                  {Op::stat, 6},
                                  {Op::read, 1},
                                  {Op::readlink, 1}}) {
            set(op, weight);
        }
        mix.creat_write_percent = 25;
        mix.max_write = 4 * 1024;
        return true;
    }
    return false;
}

Worker::Worker(const WorkerOptions& options)
    : m_options(options), m_rng(options.seed * 0x100000001b3ull + options.index) {}

void Worker::run(unsigned ops) {
    for (unsigned i = 0; i < ops; ++i) {
        switch (pick_op()) {
            case Op::creat:
                do_creat();
                break;
            case Op::write:
                do_write(false);
                break;
            case Op::append:
                do_write(true);
                break;
            case Op::truncate:
                do_truncate();
                break;
            case Op::rename:
                do_rename();
                break;
            case Op::link:
                do_link();
                break;
            case Op::unlink:
                do_unlink();
                break;
            case Op::symlink:
                do_symlink();
                break;
            case Op::mkdir:
                do_mkdir();
                break;
            case Op::rmdir:
                do_rmdir();
                break;
            case Op::chmod:
                do_chmod();
                break;
            case Op::utimes:
                do_utimes();
                break;
            case Op::mmap_write:
                do_mmap_write();
                break;
            case Op::fsync:
                do_sync(false);
                break;
            case Op::fdatasync:
                do_sync(true);
                break;
            case Op::readdir:
                do_readdir();
                break;
            case Op::stat:
                do_stat();
                break;
            case Op::read:
                do_read();
                break;
            case Op::readlink:
                do_readlink();
                break;
            case Op::count:
                break;
        }
    }
}

Op Worker::pick_op() {
    unsigned total = 0;
    for (unsigned w : m_options.mix.weights) {
        total += w;
    }
    auto at = m_rng.below(total);
    for (std::size_t i = 0; i < k_op_count; ++i) {
        if (at < m_options.mix.weights[i]) {
            return static_cast<Op>(i);
        }
        at -= m_options.mix.weights[i];
    }
    return Op::stat;
}

void Worker::record(Op op, const std::string& what, int error) {
    ++m_ops;
    m_digest.add(static_cast<std::uint64_t>(op));
    m_digest.add(static_cast<std::uint64_t>(error));
    const char* name = error > 0 ? strerrorname_np(error) : nullptr;
    std::string error_name = error < 0 ? "skipped" : name != nullptr ? name : "ok";
    if (error > 0) {
        ++m_failed;
        ++m_errors[error_name];
    }
    if (m_options.log != nullptr) {
        std::fprintf(m_options.log, "%u %s %s -> %s\n", m_ops, op_name(op).data(), what.c_str(),
                     error_name.c_str());
    }
}

std::string Worker::summary() const {
    std::string errors;
    for (const auto& [name, count] : m_errors) {
        errors += (errors.empty() ? "" : ", ") + name + " " + std::to_string(count);
    }
    char digest[17];
    std::snprintf(digest, sizeof digest, "%016llx",
                  static_cast<unsigned long long>(m_digest.value()));
    return std::to_string(m_ops) + " ops, " + std::to_string(m_ops - m_failed) + " ok, " +
           std::to_string(m_failed) + " failed" + (errors.empty() ? "" : " (" + errors + ")") +
           ", " + std::to_string(m_model.files.size()) + " file names, " +
           std::to_string(m_model.dirs.size()) + " dirs, " +
           std::to_string(m_model.symlinks.size()) + " symlinks, digest " + digest;
}

int Worker::write_at(int fd, std::size_t size, off_t offset) {
    std::vector<char> bytes(size);
    fill_bytes(m_rng.next(), bytes.data(), size);
    for (std::size_t done = 0; done < size;) {
        ssize_t n =
            ::pwrite(fd, bytes.data() + done, size - done, offset + static_cast<off_t>(done));
        if (n < 0) {
            return errno;
        }
        done += static_cast<std::size_t>(n);
    }
    return 0;
}

const std::string* Worker::dir_outside(const std::string& dir) {
    const std::string& pick = any_dir();
    bool under = pick == dir || pick.starts_with(dir + "/");
    return under ? nullptr : &pick;
}

void Worker::do_creat() {
    if (m_model.files.size() >= m_options.max_files) {
        return do_unlink();
    }
    std::string path = join(any_dir(), m_model.new_name('f'));
    static constexpr mode_t k_modes[] = {0644, 0600, 0755, 0640};
    mode_t mode = k_modes[m_rng.below(4)];
    bool with_bytes = m_rng.chance(m_options.mix.creat_write_percent);
    std::size_t size = 1 + m_rng.below(m_options.mix.max_write);
    Fd fd(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode));
    int error = error_of(fd.value);
    if (error == 0 && with_bytes) {
        error = write_at(fd.value, size, 0);
    }
    if (error == 0) {
        error = fd.close();
    }
    if (error == 0) {
        m_model.files.push_back({path, m_model.new_node()});
    }
    record(Op::creat, path, error);
}

void Worker::do_write(bool append) {
    Op op = append ? Op::append : Op::write;
    if (m_model.files.empty()) {
        return record(op, "", -1);
    }
    const std::string& path = m_model.files[m_rng.below(m_model.files.size())].path;
    std::size_t size = 1 + m_rng.below(m_options.mix.max_write);
    std::uint64_t spot = m_rng.next();
    Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | (append ? O_APPEND : 0)));
    int error = error_of(fd.value);
    struct stat st {};
    if (error == 0) {
        error = error_of(::fstat(fd.value, &st));
    }
    // Anywhere up to a little past the end (a hole), never past the size limit.
    auto limit = static_cast<std::uint64_t>(m_options.mix.max_size - size);
    auto offset = static_cast<off_t>(
        std::min<std::uint64_t>(spot % (static_cast<std::uint64_t>(st.st_size) + 8192), limit));
    if (error == 0 && (!append || static_cast<std::uint64_t>(st.st_size) <= limit)) {
        error = write_at(fd.value, size, offset);  // O_APPEND writes at the end whatever offset
    }
    if (error == 0) {
        error = fd.close();
    }
    m_digest.add(static_cast<std::uint64_t>(st.st_size));
    record(op, path, error);
}

void Worker::do_truncate() {
    if (m_model.files.empty()) {
        return record(Op::truncate, "", -1);
    }
    const std::string& path = m_model.files[m_rng.below(m_model.files.size())].path;
    auto size = static_cast<off_t>(m_rng.below(m_options.mix.max_size));
    record(Op::truncate, path, error_of(::truncate(path.c_str(), size)));
}

void Worker::do_rename() {
    auto kind = m_rng.below(10);
    if (kind < 6) {
        rename_file();
    } else if (kind < 8) {
        rename_symlink();
    } else {
        rename_dir();
    }
}

void Worker::rename_file() {
    if (m_model.files.empty()) {
        return record(Op::rename, "", -1);
    }
    std::size_t from = m_rng.below(m_model.files.size());
    std::string to = m_rng.chance(30) ? m_model.files[m_rng.below(m_model.files.size())].path
                                      : join(any_dir(), m_model.new_name('f'));
    std::string what = m_model.files[from].path + " " + to;
    int error = error_of(::rename(m_model.files[from].path.c_str(), to.c_str()));
    if (error == 0) {
        m_model.rename_file(from, to);
    }
    record(Op::rename, what, error);
}

void Worker::rename_symlink() {
    if (m_model.symlinks.empty()) {
        return record(Op::rename, "", -1);
    }
    std::size_t from = m_rng.below(m_model.symlinks.size());
    std::string to = m_rng.chance(30) ? m_model.symlinks[m_rng.below(m_model.symlinks.size())]
                                      : join(any_dir(), m_model.new_name('l'));
    std::string what = m_model.symlinks[from] + " " + to;
    int error = error_of(::rename(m_model.symlinks[from].c_str(), to.c_str()));
    if (error == 0) {
        m_model.rename_symlink(from, to);
    }
    record(Op::rename, what, error);
}

void Worker::rename_dir() {
    std::string from = any_dir();
    if (!m_model.movable(from)) {
        return record(Op::rename, from, -1);
    }
    // Into a directory outside it, under a new name or over an existing directory there (which
    // must be empty: ENOTEMPTY otherwise).
    const std::string* parent = dir_outside(from);
    if (parent == nullptr) {
        return record(Op::rename, from, -1);
    }
    bool over = m_rng.chance(25);
    const std::string* target = over ? dir_outside(from) : nullptr;
    bool ancestor = target != nullptr && (target->empty() || from.starts_with(*target + "/"));
    if (over && (target == nullptr || ancestor)) {
        return record(Op::rename, from, -1);
    }
    std::string to = over ? *target : join(*parent, m_model.new_name('d'));
    if (m_model.depth(to) + m_model.height(from) > k_max_depth) {
        return record(Op::rename, from, -1);
    }
    std::string what = from + " " + to;
    int error = error_of(::rename(from.c_str(), to.c_str()));
    if (error == 0) {
        m_model.rename_dir(from, to);
    }
    record(Op::rename, what, error);
}

void Worker::do_link() {
    if (m_model.files.empty() || m_model.files.size() >= m_options.max_files) {
        return record(Op::link, "", -1);
    }
    FileName source = m_model.files[m_rng.below(m_model.files.size())];
    std::string to = join(any_dir(), m_model.new_name('f'));
    int error = error_of(::link(source.path.c_str(), to.c_str()));
    if (error == 0) {
        m_model.files.push_back({to, source.node});
    }
    record(Op::link, source.path + " " + to, error);
}

void Worker::do_unlink() {
    bool symlink = !m_model.symlinks.empty() && (m_model.files.empty() || m_rng.chance(25));
    if (!symlink && m_model.files.empty()) {
        return record(Op::unlink, "", -1);
    }
    std::size_t index = m_rng.below(symlink ? m_model.symlinks.size() : m_model.files.size());
    std::string path = symlink ? m_model.symlinks[index] : m_model.files[index].path;
    int error = error_of(::unlink(path.c_str()));
    if (error == 0) {
        symlink ? m_model.remove_symlink(index) : m_model.remove_file(index);
    }
    record(Op::unlink, path, error);
}

void Worker::do_symlink() {
    // A target that resolves from the root, or a dangling one elsewhere.
    bool in_root = m_rng.chance(50);
    std::string dir = in_root ? std::string() : any_dir();
    std::string target = m_model.files.empty()
                             ? std::string("nowhere")
                             : m_model.files[m_rng.below(m_model.files.size())].path;
    std::string path = join(dir, m_model.new_name('l'));
    int error = error_of(::symlink(target.c_str(), path.c_str()));
    if (error == 0) {
        m_model.symlinks.push_back(path);
    }
    record(Op::symlink, path + " -> " + target, error);
}

void Worker::do_mkdir() {
    const std::string& dir = any_dir();
    if (m_model.depth(dir) >= k_max_depth) {
        return record(Op::mkdir, dir, -1);
    }
    std::string path = join(dir, m_model.new_name('d'));
    int error = error_of(::mkdir(path.c_str(), m_rng.chance(80) ? 0755 : 0700));
    if (error == 0) {
        m_model.dirs.push_back(path);
    }
    record(Op::mkdir, path, error);
}

void Worker::do_rmdir() {
    std::string dir = any_dir();
    if (dir.empty()) {
        return record(Op::rmdir, dir, -1);
    }
    int error = error_of(::rmdir(dir.c_str()));  // ENOTEMPTY unless empty
    if (error == 0) {
        m_model.remove_dir(dir);
    }
    record(Op::rmdir, dir, error);
}

void Worker::do_chmod() {
    bool dir = m_model.files.empty() || m_rng.chance(25);
    std::string path = dir ? any_dir() : m_model.files[m_rng.below(m_model.files.size())].path;
    static constexpr mode_t k_dir_modes[] = {0755, 0700, 0750, 0711};
    static constexpr mode_t k_file_modes[] = {0644, 0600, 0755, 0640, 0444};
    mode_t mode = dir ? k_dir_modes[m_rng.below(4)] : k_file_modes[m_rng.below(5)];
    record(Op::chmod, path, error_of(::chmod(sys_path(path), mode)));
}

void Worker::do_utimes() {
    auto kind = m_rng.below(3);
    std::string path = kind == 0 || m_model.files.empty() ? any_dir()
                       : kind == 1 || m_model.symlinks.empty()
                           ? m_model.files[m_rng.below(m_model.files.size())].path
                           : m_model.symlinks[m_rng.below(m_model.symlinks.size())];
    struct timespec times[2];
    for (auto& t : times) {
        t.tv_sec = static_cast<time_t>(1'000'000'000 + m_rng.below(1'000'000'000));
        t.tv_nsec = static_cast<long>(m_rng.below(1'000'000'000));
    }
    int error = error_of(::utimensat(AT_FDCWD, sys_path(path), times, AT_SYMLINK_NOFOLLOW));
    record(Op::utimes, path, error);
}

void Worker::do_mmap_write() {
    if (m_model.files.empty()) {
        return record(Op::mmap_write, "", -1);
    }
    const std::string& path = m_model.files[m_rng.below(m_model.files.size())].path;
    std::uint64_t spot = m_rng.next();
    std::size_t want = 1 + m_rng.below(m_options.mix.max_write);
    Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    int error = error_of(fd.value);
    struct stat st {};
    if (error == 0) {
        error = error_of(::fstat(fd.value, &st));
    }
    if (error == 0 && st.st_size == 0) {
        st.st_size = 4096;  // something to map
        error = error_of(::ftruncate(fd.value, st.st_size));
    }
    if (error == 0) {
        auto size = static_cast<std::size_t>(st.st_size);
        std::size_t offset = spot % size;
        std::size_t length = std::min(want, size - offset);
        void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.value, 0);
        if (map == MAP_FAILED) {
            error = errno;
        } else {
            fill_bytes(spot, static_cast<char*>(map) + offset, length);
            error = error_of(::msync(map, size, MS_SYNC));
            ::munmap(map, size);
        }
    }
    if (error == 0) {
        error = fd.close();
    }
    record(Op::mmap_write, path, error);
}

void Worker::do_sync(bool data_only) {
    Op op = data_only ? Op::fdatasync : Op::fsync;
    if (m_model.files.empty()) {
        return record(op, "", -1);
    }
    const std::string& path = m_model.files[m_rng.below(m_model.files.size())].path;
    std::size_t size = 1 + m_rng.below(m_options.mix.max_write);
    auto offset = static_cast<off_t>(m_rng.below(m_options.mix.max_size - size));
    Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    int error = error_of(fd.value);
    if (error == 0) {
        error = write_at(fd.value, size, offset);
    }
    if (error == 0) {
        error = error_of(data_only ? ::fdatasync(fd.value) : ::fsync(fd.value));
    }
    if (error == 0) {
        error = fd.close();
    }
    record(op, path, error);
}

void Worker::do_readdir() {
    const std::string& dir = any_dir();
    DIR* d = ::opendir(sys_path(dir));
    int error = error_of(d == nullptr ? -1 : 0);
    std::vector<std::string> names;
    if (d != nullptr) {
        errno = 0;
        while (dirent* e = ::readdir(d)) {
            names.emplace_back(e->d_name);
        }
        error = errno;
        ::closedir(d);
    }
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
        m_digest.add(name);
    }
    record(Op::readdir, dir, error);
}

void Worker::do_stat() {
    auto kind = m_rng.below(3);
    std::string path = kind == 0 || m_model.files.empty() ? any_dir()
                       : kind == 1 || m_model.symlinks.empty()
                           ? m_model.files[m_rng.below(m_model.files.size())].path
                           : m_model.symlinks[m_rng.below(m_model.symlinks.size())];
    struct stat st {};
    int error = error_of(::lstat(sys_path(path), &st));
    if (error == 0) {
        m_digest.add(static_cast<std::uint64_t>(st.st_mode));
        m_digest.add(static_cast<std::uint64_t>(st.st_nlink));
        // A directory's size is the filesystem's own business.
        m_digest.add(S_ISDIR(st.st_mode) ? 0 : static_cast<std::uint64_t>(st.st_size));
    }
    record(Op::stat, path, error);
}

void Worker::do_read() {
    if (m_model.files.empty()) {
        return record(Op::read, "", -1);
    }
    const std::string& path = m_model.files[m_rng.below(m_model.files.size())].path;
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    int error = error_of(fd.value);
    // Read whole, then digested: how read(2) splits a file is the filesystem's choice.
    std::string content;
    std::vector<char> buf(64 * 1024);
    while (error == 0) {
        ssize_t n = ::read(fd.value, buf.data(), buf.size());
        if (n <= 0) {
            error = error_of(n);
            break;
        }
        content.append(buf.data(), static_cast<std::size_t>(n));
    }
    m_digest.add(content);
    record(Op::read, path, error);
}

void Worker::do_readlink() {
    if (m_model.symlinks.empty()) {
        return record(Op::readlink, "", -1);
    }
    const std::string& path = m_model.symlinks[m_rng.below(m_model.symlinks.size())];
    char target[4096];
    ssize_t n = ::readlink(path.c_str(), target, sizeof target);
    if (n >= 0) {
        m_digest.add(std::string_view(target, static_cast<std::size_t>(n)));
    }
    record(Op::readlink, path, error_of(n));
}

}  // namespace fbfs::stress
