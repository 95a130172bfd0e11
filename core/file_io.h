// file_io.h: whole files in and out, each failure one lowbit::Error naming the file (no tensors,
// no JSON: the runtime library uses it too).
#pragma once
#include <string>

namespace lowbit {

// Write `bytes` to `path` atomically (temp file + fsync + rename): a crash or a full disk never
// leaves a partial file under the final name.
void write_file_atomically(const std::string& path, const std::string& bytes);

// Throws lowbit::Error unless `path` names a regular file (symlinks followed), e.g. for
// expected = "model file": "cannot open model file P: no such file", "P is a directory,
// expected a model file", "P is not a regular file, expected a model file". Reading a directory
// or a device as a file gives no clear error (or an allocation of its "size").
void require_regular_file(const std::string& path, const std::string& expected);

// The bytes of the regular file `path` (require_regular_file first); `expected` as there.
std::string read_whole_file(const std::string& path, const std::string& expected);

}  // namespace lowbit
