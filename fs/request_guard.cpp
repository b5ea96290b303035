#include "fs/request_guard.h"

#include <spdlog/spdlog.h>

#include <exception>
#include <string>

namespace fbfs {

void log_current_exception(std::string_view request, std::string_view outcome) noexcept {
    try {
        std::string what = "an exception of unknown type";
        try {
            throw;
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        spdlog::error("{} request failed: {}; {}", request, what, outcome);
    } catch (...) {
    }
}

}  // namespace fbfs
