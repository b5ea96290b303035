// Two CI runners sharing one store: runner A builds in a mount of its checkout (`--source`),
// runner B mounts the same store over a fresh checkout at another path, with new mtimes, at the
// same mountpoint. What a user relies on: B's build finds nothing to do (content-stable mtimes,
// DESIGN.md "Semantics that matter" 2), a change on B rebuilds exactly its dependents, and a
// store moved elsewhere works the same (semantics 1). The googletest test also gives runner B a
// store of its own, pulled lazily from runner A's push to a real nginx (issue 12).
//
// Every compiler run goes through a logging launcher that writes outside the mount, so the tests
// count exactly what was compiled, not what the build tool claimed.
//
// The tools are installed by scripts/deps; a missing one fails the test rather than skipping it.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "store/base/object_id.h"
#include "tests/support/http_servers.h"
#include "tests/support/make_project.h"
#include "tests/support/mount.h"
#include "tests/support/run.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;
using fbfs::test::command_line;
using fbfs::test::installed;
using fbfs::test::NginxServer;
using fbfs::test::run_cli;
using fbfs::test::Mount;
using fbfs::test::read_file;
using fbfs::test::run_tool;
using fbfs::test::run_tool_ok;
using fbfs::test::RunOptions;
using fbfs::test::RunResult;
using fbfs::test::tail;
using fbfs::test::TempDir;
using fbfs::test::write_file;

namespace {

constexpr int k_unit_count = 40;

RunOptions in_dir(const fs::path& dir) {
    RunOptions options;
    options.cwd = dir.string();
    return options;
}

// What the logging launcher saw since the last take(): the sources compiled (the argument after
// `-c`, relative to `base` if under it) and the number of other (link) runs.
struct CompilerRuns {
    std::multiset<std::string> compiled;
    int links = 0;
    std::string log;
};

// A test's two runners: the store, the fixed mountpoint, and a launcher that appends each
// command line it runs to a log outside the mount.
class Runners {
public:
    Runners() : m_root(fs::canonical(m_tmp.path())) {
        fs::create_directories(m_root / "bin");
        write_file(launcher(),
                   "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" + log().string() + "'\nexec \"$@\"\n");
        fs::permissions(launcher(), fs::perms::owner_all, fs::perm_options::add);
        write_file(log(), "");
    }

    const fs::path& root() const { return m_root; }
    fs::path operator/(const std::string& name) const { return m_root / name; }
    fs::path store() const { return m_root / "store"; }
    fs::path mountpoint() const { return m_root / "M"; }
    fs::path launcher() const { return m_root / "bin" / "logrun"; }
    fs::path log() const { return m_root / "cc.log"; }

    // Mounts `store` over the checkout `source` at the mountpoint.
    Mount mount(const fs::path& source, const fs::path& store_dir) const {
        return Mount(store_dir, mountpoint(), {"--source", source.string()});
    }
    Mount mount(const fs::path& source) const { return mount(source, store()); }

    // The compiler runs logged since the last call, and an empty log for the next.
    CompilerRuns take() const {
        CompilerRuns runs;
        runs.log = read_file(log());
        write_file(log(), "");
        std::istringstream lines(runs.log);
        std::string line;
        while (std::getline(lines, line)) {
            std::istringstream words(line);
            std::string word;
            bool compile = false;
            while (words >> word) {
                if (word == "-c" && words >> word) {
                    fs::path source(word);
                    auto relative = source.lexically_relative(mountpoint());
                    bool under =
                        source.is_absolute() && !relative.empty() && *relative.begin() != "..";
                    runs.compiled.insert(under ? relative.string() : word);
                    compile = true;
                }
            }
            runs.links += compile ? 0 : 1;
        }
        return runs;
    }

    // A fresh checkout of `checkout` at `copy`, as runner B's `git clone` would give it: the same
    // bytes with new mtimes, all a few seconds after anything runner A wrote.
    void fresh_copy(const fs::path& checkout, const fs::path& copy) const {
        run_tool_ok({"cp", "-r", checkout.string(), copy.string()});
        run_tool_ok({"sh", "-c", "find \"$1\" -exec touch -d @$(( $(date +%s) + 3 )) {} +", "sh",
                     copy.string()});
        // Otherwise these tests could pass without fbfs doing anything.
        auto probe = *fs::recursive_directory_iterator(copy);
        REQUIRE(fs::last_write_time(probe.path()) !=
                fs::last_write_time(checkout / probe.path().lexically_relative(copy)));
    }

private:
    TempDir m_tmp;
    fs::path m_root;
};

// A C project in the shape of the real workload: k_unit_count translation units in src/, each
// including one to three headers from include/ (some shared, one nesting another), a Makefile
// with -MMD -MP depfiles that compiles into build/ and links build/app.
struct MakeProject {
    std::vector<std::string> units;                     // "u07"
    std::map<std::string, std::set<std::string>> uses;  // header -> sources that include it
};

std::string unit_name(int i) {
    return std::string("u") + static_cast<char>('0' + i / 10) + static_cast<char>('0' + i % 10);
}

std::string header_text(const std::string& guard, const std::string& body) {
    return "#ifndef " + guard + "\n#define " + guard + "\n" + body + "#endif\n";
}

void write_headers(const fs::path& include) {
    write_file(include / "base.h", header_text("BASE_H", "#define BASE(x) ((x) * 3)\n"));
    for (int k = 0; k < 8; ++k) {
        std::string n = std::to_string(k);
        std::string nested = k == 3 ? "#include \"base.h\"\n" : "#define BASE(x) (x)\n";
        write_file(include / ("mod" + n + ".h"),
                   header_text("MOD" + n + "_H", nested + "static inline int mod" + n +
                                                     "(int x) { return BASE(x) + " + n + "; }\n"));
    }
    write_file(include / "shared_a.h",
               header_text("SHARED_A_H", "#define SHARED_A(x) ((x) ^ 0x5a)\n"));
    write_file(include / "shared_b.h",
               header_text("SHARED_B_H", "#define SHARED_B(x) ((x) + 11)\n"));
}

MakeProject write_make_project(const fs::path& root) {
    MakeProject project;
    fs::create_directories(root / "src");
    fs::create_directories(root / "include");
    write_headers(root / "include");
    std::string declarations, calls;
    for (int i = 0; i < k_unit_count; ++i) {
        auto unit = unit_name(i);
        auto source = "src/" + unit + ".c";
        std::string mod = "mod" + std::to_string(i % 8);
        std::string text = "#include \"" + mod + ".h\"\n";
        std::string body = mod + "(x)";
        project.uses[mod + ".h"].insert(source);
        if (i % 8 == 3) {
            project.uses["base.h"].insert(source);
        }
        if (i % 5 == 0) {
            text += "#include \"shared_a.h\"\n";
            body += " + SHARED_A(x)";
            project.uses["shared_a.h"].insert(source);
        }
        if (i % 7 == 3) {
            text += "#include \"shared_b.h\"\n";
            body += " + SHARED_B(x)";
            project.uses["shared_b.h"].insert(source);
        }
        write_file(root / source, text + "int " + unit + "(int x) { return " + body + "; }\n");
        project.units.push_back(source);
        declarations += "int " + unit + "(int);\n";
        calls += "    sum += " + unit + "(sum & 0xff);\n";
    }
    write_file(root / "src/main.c", "#include <stdio.h>\n" + declarations +
                                        "int main(void) {\n    int sum = 1;\n" + calls +
                                        "    printf(\"%d\\n\", sum);\n    return 0;\n}\n");
    project.units.push_back("src/main.c");
    write_file(root / "Makefile", std::string(fbfs::test::k_depfile_makefile));
    return project;
}

// `make` (or `make ARGS`) in the mount, through the logging launcher.
RunResult make_in(const Runners& r, std::vector<std::string> args = {}) {
    std::vector<std::string> argv{"make", "CC=" + r.launcher().string() + " gcc"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_tool(argv, in_dir(r.mountpoint()));
}

// Requires that make in the mount has nothing to do: `make -q` exits 0, and `make` says so and
// runs no compiler. On failure shows why make thought otherwise.
void require_make_up_to_date(const Runners& r, const std::string& when) {
    INFO(when);
    auto query = make_in(r, {"-q"});
    if (query.status != 0) {
        auto why = make_in(r, {"-n", "--debug=b"});
        INFO("make -q exited " << query.status << "; make -n --debug=b says:\n"
                               << tail(why.out) << tail(why.err));
        CHECK(query.status == 0);
    }
    auto build = make_in(r);
    INFO("make:\n" << build.out << build.err);
    REQUIRE(build.status == 0);
    CHECK(build.out.find("Nothing to be done for 'all'") != std::string::npos);
    auto runs = r.take();
    INFO("compiler runs:\n" << runs.log);
    CHECK(runs.compiled.empty());
    CHECK(runs.links == 0);
}

// Runs make in the mount and requires that it compiled exactly `expected` and linked once.
void require_make_rebuilds(const Runners& r, const std::set<std::string>& expected,
                           const std::string& when) {
    INFO(when);
    auto build = make_in(r);
    INFO("make:\n" << tail(build.out) << tail(build.err));
    REQUIRE(build.status == 0);
    auto runs = r.take();
    INFO("compiler runs:\n" << runs.log);
    CHECK(runs.compiled == std::multiset<std::string>(expected.begin(), expected.end()));
    CHECK(runs.links == 1);
}

// Runner A: mounts `checkout` and builds it all; returns what the mount showed as the mtime of
// `probe` (a lower file).
fs::file_time_type runner_a_make(const Runners& r, const fs::path& checkout,
                                 const MakeProject& project, const std::string& probe) {
    auto a = r.mount(checkout);
    auto build = make_in(r, {"-j2"});
    INFO("runner A's make:\n" << tail(build.out) << tail(build.err));
    REQUIRE(build.status == 0);
    auto runs = r.take();
    CHECK(runs.compiled.size() == project.units.size());
    CHECK(runs.links == 1);
    auto shown = fs::last_write_time(r.mountpoint() / probe);
    a.unmount();
    return shown;
}

void append(const fs::path& file, const std::string& text) {
    write_file(file, read_file(file) + text);
}

// The steps `ninja -n` would run, without their "[i/n] " prefixes.
std::vector<std::string> ninja_steps(const std::string& output) {
    std::vector<std::string> steps;
    std::istringstream lines(output);
    std::string line;
    while (std::getline(lines, line)) {
        auto close = line.find("] ");
        if (line.starts_with("[") && close != std::string::npos) {
            steps.push_back(line.substr(close + 2));
        }
    }
    return steps;
}

// Requires that ninja has nothing to do in `build`, and that running it compiles nothing.
void require_ninja_up_to_date(const Runners& r, const std::string& build, const std::string& when) {
    INFO(when);
    auto dry_run = run_tool_ok({"ninja", "-C", build, "-n", "-d", "explain"});
    INFO("ninja -n -d explain:\n" << tail(dry_run.out) << tail(dry_run.err));
    CHECK(dry_run.out.find("ninja: no work to do.") != std::string::npos);
    run_tool_ok({"ninja", "-C", build});
    auto runs = r.take();
    INFO("compiler runs:\n" << runs.log);
    CHECK(runs.compiled.empty());
}


// Runner B with a store of its own, pulled lazily from runner A's push to a real nginx: the pull
// moves the key and the manifest only, and the no-op build fetches what ninja reads to decide,
// never an object file or a library (issue 12, counted from nginx's access log).
void require_up_to_date_through_nginx(const Runners& r, const fs::path& checkout,
                                      const std::string& build) {
    NginxServer nginx;
    auto pushed = run_cli({"push", "--store", r.store().string(), "--remote", nginx.url(),
                           "--key", "main"});
    INFO("fbfs push: " << pushed.err);
    REQUIRE(pushed.status == 0);
    const auto store_b = r / "runner-b" / "store";
    auto gets_since = [&](std::size_t from) {
        std::set<std::string> ids;
        auto requests = nginx.requests();
        for (std::size_t i = from; i < requests.size(); ++i) {
            if (requests[i].method == "GET" && requests[i].path.find("/cas/") != std::string::npos) {
                ids.insert(requests[i].path.substr(requests[i].path.rfind('/') + 1));
            }
        }
        return std::pair{ids, requests.size() - from};
    };

    auto before_pull = nginx.requests().size();
    auto pulled = run_cli({"pull", "--store", store_b.string(), "--remote", nginx.url(), "--key",
                           "main"});
    INFO("fbfs pull: " << pulled.err);
    REQUIRE(pulled.status == 0);
    auto [manifest, pull_requests] = gets_since(before_pull);
    CHECK(pull_requests == 2);  // the key and the manifest
    CHECK(manifest.size() == 1);

    auto b = r.mount(checkout, store_b);
    auto before_build = nginx.requests().size();
    require_ninja_up_to_date(r, build, "runner B, its store pulled lazily from nginx");
    auto [fetched, build_requests] = gets_since(before_build);
    INFO("requests during the no-op build: " << build_requests);

    // Every object file and library of the build (reading them here fetches them: counted above).
    std::set<std::string> outputs;
    for (const auto& entry : fs::recursive_directory_iterator(build)) {
        auto extension = entry.path().extension();
        if (entry.is_regular_file() && (extension == ".o" || extension == ".a")) {
            outputs.insert(fbfs::ObjectId::of(read_file(entry.path())).hex());
        }
    }
    CHECK(outputs.size() >= 4);  // gtest-all.o, gtest_main.o and so on, and their libraries
    for (const auto& id : outputs) {
        CHECK_FALSE(fetched.contains(id));
    }
    CHECK(fetched.size() <= 6);  // .ninja_log, .ninja_deps, build.ninja and the like
    b.unmount();
}
}  // namespace

TEST_CASE("Two runners: make finds nothing to do on runner B after runner A built", "[fuse]") {
    Runners r;
    const auto x = r / "runner-a" / "work" / "project";
    const auto y = r / "runner-b" / "_work" / "project" / "project";
    auto project = write_make_project(x);
    auto shown_on_a = runner_a_make(r, x, project, "src/u00.c");

    fs::create_directories(y.parent_path());
    r.fresh_copy(x, y);
    {
        auto b = r.mount(y);
        CHECK(fs::last_write_time(r.mountpoint() / "src/u00.c") == shown_on_a);
        require_make_up_to_date(r, "runner B, fresh checkout");
    }

    SECTION("a source changed in the checkout rebuilds that unit and relinks") {
        append(y / "src/u07.c", "/* changed on runner B */\n");
        auto b = r.mount(y);
        require_make_rebuilds(r, {"src/u07.c"}, "after changing src/u07.c in the checkout");
        require_make_up_to_date(r, "after rebuilding u07");
        b.remount();
        require_make_up_to_date(r, "after rebuilding u07 and remounting");
    }
    SECTION("a header changed in the checkout rebuilds exactly the units including it") {
        append(y / "include/shared_a.h", "/* changed on runner B */\n");
        auto b = r.mount(y);
        require_make_rebuilds(r, project.uses.at("shared_a.h"),
                              "after changing include/shared_a.h in the checkout");
        b.remount();
        require_make_up_to_date(r, "after rebuilding shared_a.h's units and remounting");
    }
    SECTION("a source and a nested header changed through the mount rebuild their dependents") {
        auto b = r.mount(y);
        append(r.mountpoint() / "src/u12.c", "/* changed through the mount */\n");
        require_make_rebuilds(r, {"src/u12.c"}, "after changing src/u12.c through the mount");
        append(r.mountpoint() / "include/base.h", "/* changed through the mount */\n");
        require_make_rebuilds(r, project.uses.at("base.h"),
                              "after changing include/base.h (nested in mod3.h) through the mount");
        b.remount();
        require_make_up_to_date(r, "after the changes through the mount and a remount");
        // The checkout itself is read-only to fbfs: changes land in the volume only.
        CHECK(read_file(y / "src/u12.c").find("through the mount") == std::string::npos);
    }
}

TEST_CASE("Two runners: a moved store gives the same result", "[fuse]") {
    Runners r;
    const auto x = r / "runner-a" / "project";
    const auto y = r / "runner-b" / "checkout";
    auto project = write_make_project(x);
    runner_a_make(r, x, project, "src/u00.c");

    const auto moved = r / "elsewhere" / "store";
    fs::create_directories(moved.parent_path());
    run_tool_ok({"cp", "-a", r.store().string(), moved.string()});
    fs::remove_all(r.store());
    fs::create_directories(y.parent_path());
    r.fresh_copy(x, y);
    {
        auto b = r.mount(y, moved);
        require_make_up_to_date(r, "runner B, moved store, same mountpoint");
    }
    // Nothing in the store depends on the mountpoint, and make's paths are all relative.
    Mount elsewhere(moved, r / "M2", {"--source", y.string()});
    auto query =
        run_tool({"make", "-q", "CC=" + r.launcher().string() + " gcc"}, in_dir(elsewhere.path()));
    INFO("make -q at another mountpoint: " << query.out << query.err);
    CHECK(query.status == 0);
}

TEST_CASE("Two runners: ninja says no work to do on runner B", "[fuse]") {
    Runners r;
    const auto x = r / "runner-a" / "googletest";
    const auto y = r / "runner-b" / "work" / "googletest";
    const auto build = (r.mountpoint() / "build").string();
    fs::create_directories(x.parent_path());
    run_tool_ok({"cp", "-r", "/usr/src/googletest", x.string()});
    {
        auto a = r.mount(x);
        const auto launcher = r.launcher().string();
        run_tool_ok({"cmake", "-S", r.mountpoint().string(), "-B", build, "-G", "Ninja",
                     "-DCMAKE_C_COMPILER_LAUNCHER=" + launcher,
                     "-DCMAKE_CXX_COMPILER_LAUNCHER=" + launcher});
        r.take();  // configure-time compiler checks
        run_tool_ok({"ninja", "-C", build});
        auto runs = r.take();
        INFO("runner A's compiler runs:\n" << runs.log);
        CHECK(runs.compiled.count("googletest/src/gtest-all.cc") == 1);
        a.unmount();
    }

    fs::create_directories(y.parent_path());
    r.fresh_copy(x, y);
    {
        auto b = r.mount(y);
        require_ninja_up_to_date(r, build, "runner B, fresh checkout");
    }
    require_up_to_date_through_nginx(r, y, build);

    append(y / "googletest/src/gtest-all.cc", "// changed on runner B\n");
    auto b = r.mount(y);
    auto dry_run = run_tool_ok({"ninja", "-C", build, "-n"});
    INFO("ninja -n after changing gtest-all.cc:\n" << dry_run.out);
    CHECK(ninja_steps(dry_run.out) ==
          std::vector<std::string>{"Building CXX object googletest/CMakeFiles/gtest.dir/src/"
                                   "gtest-all.cc.o",
                                   "Linking CXX static library lib/libgtest.a"});
    run_tool_ok({"ninja", "-C", build});
    auto runs = r.take();
    INFO("compiler runs:\n" << runs.log);
    CHECK(runs.compiled == std::multiset<std::string>{"googletest/src/gtest-all.cc"});
    b.remount();
    require_ninja_up_to_date(r, build, "after rebuilding gtest-all.cc and remounting");
}
