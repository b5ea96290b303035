// Reading packs (format in pack_format.h and docs/FORMAT.md).
//
// read_pack() reads a pack front to back without seeking (so stdin works), checks every part as
// it goes — header, each section's digest, the volumes (check_snapshot), every object's bytes
// against its id, every frame against the frame table, the footer's offsets — and hands what it
// read to a PackSink. A sink must treat nothing as final until read_pack() has returned success:
// a damaged footer is only found at the very end.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "store/base/error.h"
#include "store/base/progress.h"
#include "store/meta/volume_snapshot.h"
#include "store/pack/pack_format.h"

namespace fbfs {

struct PackContents {
    std::vector<VolumeSnapshot> volumes;
    std::vector<pack::PackedObject> objects;  // in stream order
};

class PackSink {
public:
    virtual ~PackSink() = default;
    // The volumes and the object table, both checked. Returns, per object, whether the sink
    // wants its bytes (all objects are checked either way).
    virtual Result<std::vector<bool>> begin(const PackContents& contents) = 0;
    // The next bytes of wanted object `index`, in order.
    virtual Result<void> object_bytes(std::size_t index, std::string_view bytes) = 0;
    // All of wanted object `index` has arrived and matches its id.
    virtual Result<void> object_end(std::size_t index) = 0;
};

struct ReadSummary {
    PackContents contents;           // what begin() was shown, handed over once all is checked
    std::uint64_t packed_bytes = 0;  // the pack's length
};

// Reads the pack from `fd` (from its current offset) into `sink`.
Result<ReadSummary> read_pack(int fd, PackSink& sink, const ProgressFn& progress);

}  // namespace fbfs
