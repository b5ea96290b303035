// The Makefile of the small C projects the two-runner and pack tests build: every src/*.c into
// build/*.o with -MMD -MP depfiles (so make knows each object's headers), linked into build/app.
#pragma once

#include <string_view>

namespace fbfs::test {

inline constexpr std::string_view k_depfile_makefile =
    "CFLAGS = -O1\n"
    "SRCS := $(wildcard src/*.c)\n"
    "OBJS := $(patsubst src/%.c,build/%.o,$(SRCS))\n"
    ".PHONY: all\n"
    "all: build/app\n"
    "build/app: $(OBJS)\n"
    "\t$(CC) -o $@ $^\n"
    "build/%.o: src/%.c | build\n"
    "\t$(CC) $(CFLAGS) -Iinclude -MMD -MP -c $< -o $@\n"
    "build:\n"
    "\tmkdir -p $@\n"
    "-include $(OBJS:.o=.d)\n";

}  // namespace fbfs::test
