// must(): unwraps a Result in a test, failing the test with the error's message if it is one.
#pragma once

#include <catch2/catch.hpp>
#include <string>
#include <utility>

#include "store/base/error.h"

namespace fbfs::test {

template <class T>
T must(Result<T> result) {
    INFO((result ? std::string() : result.error().message));
    REQUIRE(result);
    return std::move(*result);
}

inline void must(const Result<void>& result) {
    INFO((result ? std::string() : result.error().message));
    REQUIRE(result);
}

}  // namespace fbfs::test
