// serialize.h: StateDict files (checkpoints) in the safetensors container:
//   [u64 little-endian header length N][N bytes JSON header][raw little-endian tensor data]
// The header maps each tensor name to {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}
// (offsets relative to the data section); "__metadata__" holds string values: "format"
// ("lowbit-checkpoint"), "scalars" and "strings" (JSON-encoded maps) and "crc32" of the data
// section. Any safetensors reader opens a lowbit checkpoint.
// Writes are atomic: a temporary file in the same folder, fsync, then rename, so a crash or a
// full disk never leaves a partial checkpoint under the final name.
// Reads validate everything (length, JSON, dtype, shapes, offsets inside the file, no overlap,
// checksum) and throw lowbit::Error naming the file and the problem.
#pragma once
#include <string>

#include "core/file_io.h"
#include "core/state_dict.h"

namespace lowbit {

void save_state_dict(const std::string& path, const StateDict& state);
StateDict load_state_dict_file(const std::string& path);

// write_file_atomically, require_regular_file: core/file_io.h.

}  // namespace lowbit
