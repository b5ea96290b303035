#include "tests/torture/churn_log.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "store/base/object_id.h"
#include "tests/support/posix.h"

namespace fbfs::test {

namespace {

namespace fs = std::filesystem;

using Outcome = std::map<std::string, std::optional<FileState>>;

std::optional<FileState> lookup(const FileTree& tree, const std::string& path) {
    auto it = tree.find(path);
    return it == tree.end() ? std::nullopt : std::optional<FileState>(it->second);
}

void set(FileTree& tree, const std::string& path, const std::optional<FileState>& state) {
    if (state) {
        tree[path] = *state;
    } else {
        tree.erase(path);
    }
}

std::string describe(const std::optional<FileState>& state) {
    if (!state) {
        return "absent";
    }
    return state->sha256.substr(0, 12) + "… (" + std::to_string(state->size) + " bytes)";
}

// One `begin` line, parsed: what the operation does and what it may have left if not done.
struct Operation {
    std::string line;
    std::string kind;
    std::vector<std::string> args;

    // The states of its paths once it is done, given `tree` before it.
    Outcome after(const FileTree& tree) const {
        if (kind == "write" || kind == "patch") {
            return {{args.at(0), FileState{args.at(1), std::stoull(args.at(2))}}};
        }
        if (kind == "rename") {
            return {{args.at(0), std::nullopt}, {args.at(1), lookup(tree, args.at(0))}};
        }
        if (kind == "unlink") {
            return {{args.at(0), std::nullopt}};
        }
        return {};  // mkdir
    }

    // Every state its paths may be in if it was begun and not logged done.
    std::vector<Outcome> outcomes(const FileTree& tree) const {
        Outcome done = after(tree);
        Outcome before;
        for (const auto& [path, state] : done) {
            before[path] = lookup(tree, path);
        }
        std::vector<Outcome> all{before, done};
        if (kind == "write" && !lookup(tree, args.at(0))) {
            all.push_back({{args.at(0), state_of("")}});  // created, never closed
        }
        return all;
    }
};

Operation parse_begin(const std::string& line) {
    std::istringstream in(line);
    std::string word;
    Operation op{line, {}, {}};
    in >> word >> op.kind;
    for (std::string arg; in >> arg;) {
        op.args.push_back(arg);
    }
    std::size_t wanted = op.kind == "write" || op.kind == "patch"    ? 3
                         : op.kind == "rename"                       ? 2
                         : op.kind == "unlink" || op.kind == "mkdir" ? 1
                                                                     : 0;
    if (wanted == 0 || op.args.size() != wanted) {
        throw std::runtime_error("fbfs_churn log: cannot parse `" + line + "`");
    }
    return op;
}

void replay_one(const fs::path& log, ChurnExpectation& out) {
    std::string worker = log.stem().string();
    std::ifstream in(log);
    std::optional<Operation> current;
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("begin ")) {
            current = parse_begin(line);
        } else if (line == "done") {
            if (!current) {
                throw std::runtime_error(worker + ": `done` without `begin`");
            }
            for (const auto& [path, state] : current->after(out.settled)) {
                set(out.settled, path, state);
            }
            if (current->kind == "mkdir") {
                out.directories.insert(current->args.at(0));
            }
            ++out.done;
            current.reset();
        } else if (line.starts_with("fail ")) {
            std::istringstream fields(line.substr(5));
            ChurnFailure failure{worker, 0, 0, {}};
            fields >> failure.error >> failure.monotonic_ns;
            std::getline(fields >> std::ws, failure.what);
            if (!fields && !fields.eof()) {
                throw std::runtime_error(worker + ": cannot parse `" + line + "`");
            }
            out.failures.push_back(failure);
        } else if (line.starts_with("mismatch ")) {
            out.mismatches.push_back(worker + ": " + line.substr(9));
        } else if (!line.empty()) {
            throw std::runtime_error(worker + ": cannot parse `" + line + "`");
        }
    }
    if (current) {
        out.pending.push_back(PendingOp{worker, current->line, current->outcomes(out.settled)});
    }
}

}  // namespace

FileState state_of(const std::string& content) {
    return FileState{ObjectId::of(content).hex(), content.size()};
}

ChurnExpectation replay_churn_logs(const fs::path& logs, const FileTree& initial) {
    ChurnExpectation out;
    out.settled = initial;
    for (const auto& entry : fs::directory_iterator(logs)) {
        if (entry.path().extension() == ".log") {
            replay_one(entry.path(), out);
        }
    }
    return out;
}

FileTree read_tree(const fs::path& root) {
    FileTree tree;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        auto status = entry.symlink_status();
        if (fs::is_directory(status)) {
            continue;
        }
        std::string rel = entry.path().lexically_relative(root).string();
        if (!fs::is_regular_file(status)) {
            throw std::runtime_error(rel + " is neither a regular file nor a directory");
        }
        tree[rel] = state_of(read_path(entry.path()));
    }
    return tree;
}

std::vector<std::string> compare_churn(const ChurnExpectation& expected, const FileTree& actual,
                                       const fs::path& root) {
    std::vector<std::string> problems;
    std::set<std::string> in_doubt;
    for (const auto& op : expected.pending) {
        for (const auto& [path, state] : op.outcomes.front()) {
            in_doubt.insert(path);
        }
    }
    std::set<std::string> paths;
    for (const auto& tree : {expected.settled, actual}) {
        for (const auto& [path, state] : tree) {
            paths.insert(path);
        }
    }
    for (const auto& path : paths) {
        auto want = lookup(expected.settled, path);
        auto have = lookup(actual, path);
        if (!in_doubt.contains(path) && want != have) {
            problems.push_back(path + " is " + describe(have) + ", but its last logged close " +
                               "or rename left it " + describe(want));
        }
    }
    for (const auto& op : expected.pending) {
        bool matched = false;
        for (const auto& outcome : op.outcomes) {
            bool all = true;
            for (const auto& [path, state] : outcome) {
                all = all && lookup(actual, path) == state;
            }
            matched = matched || all;
        }
        if (!matched) {
            std::string seen;
            for (const auto& [path, state] : op.outcomes.front()) {
                seen += " " + path + " is " + describe(lookup(actual, path)) + ";";
            }
            problems.push_back(op.worker + " was killed in `" + op.line +
                               "`, and neither its before nor its after holds:" + seen);
        }
    }
    for (const auto& dir : expected.directories) {
        if (!fs::is_directory(root / dir)) {
            problems.push_back("directory " + dir + " was made (logged done) but is gone");
        }
    }
    return problems;
}

}  // namespace fbfs::test
