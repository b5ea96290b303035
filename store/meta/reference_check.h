// Checking the `refs` table against the inodes that name objects, for `fbfs verify`.
//
// A reference count says how many inodes (all volumes, orphans included) have an object as
// their content; the pool deletes an object when its count goes. A count that is too low lets an
// object be deleted while an inode still names it; one too high keeps it forever.
#pragma once

#include <string>
#include <vector>

#include "store/base/error.h"
#include "store/meta/store.h"

namespace fbfs {

struct ReferenceProblem {
    std::string object;  // the object's id in hex (the key's bytes in hex if it is no id)
    std::string what;    // e.g. "has reference count 2 but 1 inode names it"
};

// Reads every inode of every volume and the whole `refs` table in one read transaction, and
// returns each object whose count does not decode, or is not the number of inodes that name it.
// Fails only if the metadata cannot be read (an inode record that does not decode included).
Result<std::vector<ReferenceProblem>> check_references(const Store& store);

}  // namespace fbfs
