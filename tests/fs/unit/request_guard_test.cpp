#include "fs/request_guard.h"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using fbfs::after_reply;
using fbfs::answer_or_fail;
using fbfs::each_or_log;

namespace {

// The default logger writes into `text` while this lives.
struct CapturedLog {
    std::ostringstream text;
    std::shared_ptr<spdlog::logger> before = spdlog::default_logger();
    CapturedLog() {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text);
        spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
    }
    ~CapturedLog() { spdlog::set_default_logger(before); }
    CapturedLog(const CapturedLog&) = delete;
    CapturedLog& operator=(const CapturedLog&) = delete;
};

}  // namespace

TEST_CASE("RequestGuard: a handler that throws is answered once and logged in one line") {
    CapturedLog log;
    int answered = 0;
    auto answer = [&] { ++answered; };
    SECTION("out of memory") {
        answer_or_fail(
            "lookup", [] { throw std::bad_alloc(); }, answer);
        CHECK(answered == 1);
        CHECK_THAT(log.text.str(), Catch::Contains("lookup request failed: std::bad_alloc"));
    }
    SECTION("a library that cannot set up") {
        answer_or_fail(
            "flush", [] { throw std::runtime_error("OpenSSL could not initialise SHA-256"); },
            answer);
        CHECK(answered == 1);
        CHECK_THAT(log.text.str(), Catch::Contains("flush request failed: OpenSSL could not "
                                                   "initialise SHA-256; answered EIO"));
    }
    SECTION("something that is no std::exception") {
        answer_or_fail(
            "read", [] { throw 42; }, answer);
        CHECK(answered == 1);
        CHECK_THAT(log.text.str(), Catch::Contains("read request failed: an exception of unknown "
                                                   "type"));
    }
    auto text = log.text.str();
    CHECK(std::count(text.begin(), text.end(), '\n') == 1);
}

TEST_CASE("RequestGuard: a handler that returns is not answered again") {
    CapturedLog log;
    int ran = 0;
    int answered = 0;
    answer_or_fail(
        "getattr", [&] { ++ran; }, [&] { ++answered; });
    CHECK(ran == 1);
    CHECK(answered == 0);
    CHECK(log.text.str().empty());
}

TEST_CASE("RequestGuard: nothing escapes, even when answering fails too") {
    CapturedLog log;
    // answer_or_fail is noexcept: an escape would end this test binary.
    answer_or_fail(
        "write", [] { throw std::bad_alloc(); }, [] { throw std::bad_alloc(); });
    CHECK_THAT(log.text.str(), Catch::Contains("answering it failed too"));
}

TEST_CASE("RequestGuard: work after an answer that throws is logged and goes no further") {
    CapturedLog log;
    after_reply("create", [] { throw std::bad_alloc(); });
    CHECK_THAT(log.text.str(), Catch::Contains("create request failed: std::bad_alloc"));
}

TEST_CASE("RequestGuard: in a batch, an entry that throws is logged and every other one runs") {
    CapturedLog log;
    std::vector<std::size_t> done;
    each_or_log("forget_multi", 5, [&](std::size_t i) {
        if (i == 1) {
            throw std::bad_alloc();
        }
        if (i == 3) {
            throw std::runtime_error("LMDB said no");
        }
        done.push_back(i);
    });
    CHECK(done == std::vector<std::size_t>{0, 2, 4});
    auto text = log.text.str();
    CHECK(std::count(text.begin(), text.end(), '\n') == 2);
    CHECK_THAT(text, Catch::Contains("forget_multi request failed: std::bad_alloc"));
    CHECK_THAT(text, Catch::Contains("forget_multi request failed: LMDB said no"));
}
