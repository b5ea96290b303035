#include "store/base/error.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

using fbfs::Error;
using fbfs::make_error;
using fbfs::Result;

namespace {

Result<int> number(int n) {
    if (n < 0) {
        return make_error(EINVAL, "number " + std::to_string(n) + " is negative");
    }
    return n;
}

Result<void> positive(int n) {
    if (n <= 0) {
        return make_error(ERANGE, "number " + std::to_string(n) + " is not positive");
    }
    return {};
}

// Runs the steps in order, recording each one reached.
Result<std::string> steps(int a, int b, std::vector<std::string>& reached) {
    reached.push_back("start");
    TRY(positive(a));
    reached.push_back("checked");
    TRY_ASSIGN(auto first, number(a));
    int second = 0;
    TRY_ASSIGN(second, number(b));
    reached.push_back("end");
    return std::to_string(first + second);
}

}  // namespace

TEST_CASE("TRY: a failure returns its Error unchanged and runs nothing after it",
          "[store][error]") {
    std::vector<std::string> reached;
    auto failed = steps(0, 1, reached);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code == ERANGE);
    CHECK(failed.error().message == "number 0 is not positive");
    CHECK(reached == std::vector<std::string>{"start"});
}

TEST_CASE("TRY_ASSIGN: declares or assigns the value, and returns a failure's Error",
          "[store][error]") {
    std::vector<std::string> reached;
    auto sum = steps(2, 3, reached);
    REQUIRE(sum);
    CHECK(*sum == "5");
    CHECK(reached == std::vector<std::string>{"start", "checked", "end"});

    reached.clear();
    auto failed = steps(2, -7, reached);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code == EINVAL);
    CHECK(failed.error().message == "number -7 is negative");
    CHECK(reached == std::vector<std::string>{"start", "checked"});
}

TEST_CASE("TRY: a named Result passed to it is left as it was", "[store][error]") {
    Result<std::string> kept = make_error(EIO, "kept message");
    auto pass_up = [&]() -> Result<void> {
        TRY(kept);
        return {};
    };
    CHECK(pass_up().error().message == "kept message");
    CHECK(kept.error().message == "kept message");
}

TEST_CASE("TRY_ASSIGN: moves a move-only value out of a temporary Result", "[store][error]") {
    auto make = [](bool ok) -> Result<std::unique_ptr<int>> {
        if (!ok) {
            return make_error(ENOMEM, "no memory");
        }
        return std::make_unique<int>(42);
    };
    auto use = [&](bool ok) -> Result<int> {
        TRY_ASSIGN(auto owned, make(ok));
        return *owned;
    };
    CHECK(use(true) == 42);
    CHECK(use(false).error().code == ENOMEM);
}
