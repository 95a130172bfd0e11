// checkpoint_files.cpp: rotation on save, fallback on load (see checkpoint_files.h).
#include "models/checkpoint_files.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/serialize.h"

namespace lowbit {

namespace fs = std::filesystem;

std::string checkpoint_file_generation(const std::string& path, int k) {
  return k == 0 ? path : detail::concat(path, ".", k);
}

void save_checkpoint_file(const std::string& path, const StateDict& state, int keep) {
  LOWBIT_CHECK(keep >= 1, "checkpoints to keep must be at least 1, got ", keep);
  if (keep > 1 && fs::exists(path)) {
    for (int k = keep - 1; k >= 2; --k) {
      const std::string older = checkpoint_file_generation(path, k - 1);
      if (fs::exists(older) && std::rename(older.c_str(), checkpoint_file_generation(path, k).c_str()) != 0)
        throw Error(detail::concat("cannot rename ", older, ": ", std::strerror(errno)));
    }
    // A hard link, not a copy: no extra disk space, and `path` is never absent.
    const std::string previous = checkpoint_file_generation(path, 1);
    std::error_code ignored;
    fs::remove(previous, ignored);
    if (::link(path.c_str(), previous.c_str()) != 0)
      throw Error(detail::concat("cannot keep the previous checkpoint as ", previous, ": ", std::strerror(errno)));
  }
  save_state_dict(path, state);
}

LoadedCheckpointFile load_newest_checkpoint_file(const std::string& path) {
  LOWBIT_CHECK(fs::exists(path) || fs::exists(checkpoint_file_generation(path, 1)), "no checkpoint at ", path);
  LoadedCheckpointFile loaded;
  std::string first_error;
  for (int k = 0;; ++k) {
    const std::string file = checkpoint_file_generation(path, k);
    if (k > 0 && !fs::exists(file)) break;
    try {
      loaded.state = load_state_dict_file(file);
      loaded.path = file;
      return loaded;
    } catch (const Error& e) {
      if (first_error.empty()) first_error = e.what();
      loaded.skipped.push_back(e.what());
    }
  }
  throw Error(first_error);
}

}  // namespace lowbit
