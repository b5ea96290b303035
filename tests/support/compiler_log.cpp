#include "tests/support/compiler_log.h"

#include <sstream>

#include "tests/support/temp_dir.h"

namespace fbfs::test {

namespace fs = std::filesystem;

CompilerLog::CompilerLog(const fs::path& dir) : m_launcher(dir / "logrun"), m_log(dir / "cc.log") {
    write_file(m_launcher,
               "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" + m_log.string() + "'\nexec \"$@\"\n");
    fs::permissions(m_launcher, fs::perms::owner_all, fs::perm_options::add);
    write_file(m_log, "");
}

CompilerRuns CompilerLog::take() const {
    CompilerRuns runs;
    runs.log = read_file(m_log);
    write_file(m_log, "");
    std::istringstream lines(runs.log);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream words(line);
        bool compile = false;
        for (std::string word; words >> word;) {
            if (word == "-c" && words >> word) {
                runs.compiled.insert(word);
                compile = true;
            }
        }
        runs.links += compile ? 0 : 1;
    }
    return runs;
}

RunResult make_in(const fs::path& dir, const CompilerLog& cc,
                  const std::vector<std::string>& args) {
    std::vector<std::string> argv{"make", cc.cc()};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions options;
    options.cwd = dir.string();
    return run_tool(argv, options);
}

}  // namespace fbfs::test
