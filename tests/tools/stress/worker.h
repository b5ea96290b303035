// One stress process: runs a seeded sequence of file-system operations in its own subtree (its
// working directory) and folds every outcome — errno, listing, content read back, attributes
// other than times and inode numbers — into a digest. Two filesystems that behave alike give the
// same digest and the same tree for the same seed.
//
// Not thread-safe; one per process.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>

#include "tests/tools/stress/model.h"

namespace fbfs::stress {

enum class Op {
    creat,
    write,
    append,
    truncate,
    rename,
    link,
    unlink,
    symlink,
    mkdir,
    rmdir,
    chmod,
    utimes,
    mmap_write,
    fsync,
    fdatasync,
    readdir,
    stat,
    read,
    readlink,
    count
};
constexpr std::size_t k_op_count = static_cast<std::size_t>(Op::count);

// The name of `op` as options spell it ("mmap_write").
std::string_view op_name(Op op);

struct Mix {
    std::array<unsigned, k_op_count> weights{};
    unsigned creat_write_percent = 50;  // how often a new file gets bytes at once
    std::size_t max_write = 16 * 1024;  // bytes per write
    std::size_t max_size = 256 * 1024;  // writes and truncations stay below this
};
// "fsstress" (every operation, weighted about as fsstress's defaults), "metadata" (names,
// attributes and small files) or "none" (no operation, for -o to add some); false if `name` is
// none of these.
bool named_mix(std::string_view name, Mix& mix);

struct WorkerOptions {
    std::uint64_t seed = 1;
    unsigned index = 0;         // which process: mixed into the seed
    std::size_t max_files = 0;  // names of regular files this process keeps at most
    Mix mix;
    std::FILE* log = nullptr;  // one line per operation, if set
};

class Worker {
public:
    explicit Worker(const WorkerOptions& options);

    // Reads the subtree as it is (a seeded source, or nothing). False if it cannot be read.
    bool start() { return m_model.scan("."); }
    void run(unsigned ops);

    // "<ops> ops, <ok> ok, <failed> failed (ENOTEMPTY 3, ...), digest <hex>, ..."
    std::string summary() const;
    std::uint64_t digest() const { return m_digest.value(); }

private:
    Op pick_op();
    void record(Op op, const std::string& what, int error);

    void do_creat();
    void do_write(bool append);
    void do_truncate();
    void do_rename();
    void rename_file();
    void rename_symlink();
    void rename_dir();
    void do_link();
    void do_unlink();
    void do_symlink();
    void do_mkdir();
    void do_rmdir();
    void do_chmod();
    void do_utimes();
    void do_mmap_write();
    void do_sync(bool data_only);
    void do_readdir();
    void do_stat();
    void do_read();
    void do_readlink();

    // Writes `size` seeded bytes at `offset` of `fd`: 0 or the errno.
    int write_at(int fd, std::size_t size, off_t offset);
    const std::string& any_dir() { return m_model.dirs[m_rng.below(m_model.dirs.size())]; }
    // A directory not under `dir` (nor `dir` itself), or nullptr.
    const std::string* dir_outside(const std::string& dir);

    WorkerOptions m_options;
    Rng m_rng;
    Model m_model;
    Digest m_digest;
    unsigned m_ops = 0;
    unsigned m_failed = 0;
    std::map<std::string, unsigned> m_errors;  // errno name to count
};

}  // namespace fbfs::stress
