// checkpoint_files.h: the rotating set of a run's checkpoint files, newest first:
//   P (e.g. OUT/last.ckpt), P.1, P.2, ..., P.(keep-1)
// save_checkpoint_file() makes room by renaming P.(k-1) -> P.k, links P -> P.1 (the previous
// checkpoint stays readable under both names) and only then replaces P atomically (temporary file,
// fsync, rename: core/serialize.h). So a failed write (a full disk, an unwritable folder) leaves P
// as it was, and a node that dies mid-write leaves P.1 as the fallback.
// load_newest_checkpoint_file() reads P, or, when P is missing, truncated or corrupt (its checksum
// fails), the newest of P.1, P.2, ... that loads, saying which files it skipped and why.
#pragma once
#include <string>
#include <vector>

#include "core/state_dict.h"

namespace lowbit {

// P.k for k >= 1, P for k = 0.
std::string checkpoint_file_generation(const std::string& path, int k);

// Writes `state` to `path`, keeping the previous keep - 1 checkpoints as path.1, ...
// (keep >= 1; keep = 1: only `path`). Throws lowbit::Error naming the file and the cause.
void save_checkpoint_file(const std::string& path, const StateDict& state, int keep);

struct LoadedCheckpointFile {
  StateDict state;
  std::string path;                   // the file it came from
  std::vector<std::string> skipped;  // one line per newer file that could not be loaded: why
};

// The newest of path, path.1, path.2, ... that loads (stops at the first missing generation after
// path). Throws "no checkpoint at P" when neither P nor P.1 exists, else the error of P when none loads.
LoadedCheckpointFile load_newest_checkpoint_file(const std::string& path);

}  // namespace lowbit
