#include "fs/listing_reply.h"

#include <dirent.h>

#include <string>
#include <vector>

#include "fs/request_guard.h"

namespace fbfs {

fuse_entry_param entry_param(const Filesystem& fs, const struct stat& st) {
    fuse_entry_param e{};
    e.ino = st.st_ino;
    e.attr = st;
    e.attr_timeout = fs.cache_timeout(st.st_ino);
    e.entry_timeout = e.attr_timeout;
    return e;
}

int reply_listing(fuse_req_t req, Filesystem& fs, InodeNumber dir_ino, const DirHandle& dir,
                  std::size_t size, off_t offset, bool plus, const SendListing& send) {
    std::vector<char> buf(size);
    std::size_t used = 0;
    std::vector<InodeNumber> counted;  // lookups the page carries
    for (auto i = static_cast<std::size_t>(offset); i < dir.entries.size(); ++i) {
        const auto& entry = dir.entries[i];
        auto next = static_cast<off_t>(i + 1);
        char* at = buf.data() + used;
        std::size_t room = size - used;
        std::size_t need = 0;
        bool dots = entry.name == "." || entry.name == "..";
        if (plus && !dots) {
            // A lookup: it counts the entry, and finds it by name as the kernel will.
            auto st = fs.lookup(dir_ino, entry.name);
            if (!st) {
                continue;  // removed since opendir
            }
            fuse_entry_param e = entry_param(fs, *st);
            need = fuse_add_direntry_plus(req, at, room, entry.name.c_str(), &e, next);
            if (need > room) {
                fs.forget(st->st_ino, 1);  // did not fit: the kernel never sees it
                break;
            }
            counted.push_back(st->st_ino);
        } else {
            struct stat st {};
            st.st_ino = entry.ino;
            st.st_mode = static_cast<mode_t>(DTTOIF(entry.type));
            if (plus) {
                fuse_entry_param e{};
                e.attr = st;
                need = fuse_add_direntry_plus(req, at, room, entry.name.c_str(), &e, next);
            } else {
                need = fuse_add_direntry(req, at, room, entry.name.c_str(), &st, next);
            }
            if (need > room) {
                break;
            }
        }
        used += need;
    }
    int sent = send(std::span<const char>(buf.data(), used));
    if (sent != 0) {
        after_reply(plus ? "readdirplus" : "readdir", [&] {
            for (InodeNumber ino : counted) {
                fs.forget(ino, 1);
            }
        });
    }
    return sent;
}

}  // namespace fbfs
