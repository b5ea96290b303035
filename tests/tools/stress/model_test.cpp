// The stress tool's model must follow rename(2) exactly, or its picture of the tree (and every
// operation picked from it) goes wrong. Built into fbfs_fs_unit_tests, which scripts/test also
// runs under ASan.
#include "tests/tools/stress/model.h"

#include <catch2/catch.hpp>

using fbfs::stress::Model;

TEST_CASE("stress model: a rename onto the name itself changes nothing", "[stress]") {
    Model model;
    model.files = {{"f0", 1}, {"f1", 2}};
    model.symlinks = {"l0", "l1"};

    model.rename_symlink(1, "l1");  // the last one: its index is past the end once removed
    model.rename_symlink(0, "l0");
    model.rename_file(1, "f1");

    CHECK(model.symlinks == std::vector<std::string>{"l0", "l1"});
    REQUIRE(model.files.size() == 2);
    CHECK(model.files[0].path == "f0");
    CHECK(model.files[1].path == "f1");
}

TEST_CASE("stress model: a rename over another name replaces it", "[stress]") {
    Model model;
    model.files = {{"f0", 1}, {"f1", 2}, {"f2", 2}};
    model.symlinks = {"l0", "l1", "l2"};

    model.rename_symlink(2, "l0");
    CHECK(model.symlinks == std::vector<std::string>{"l1", "l0"});

    model.rename_file(1, "f2");  // two links of one file: rename(2) does nothing
    REQUIRE(model.files.size() == 3);
    model.rename_file(2, "f0");
    REQUIRE(model.files.size() == 2);
    CHECK(model.files[0].path == "f1");
    CHECK(model.files[1].path == "f0");
    CHECK(model.files[1].node == 2);
}
