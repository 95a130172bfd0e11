// cli_run.h: what the end-to-end training tests of tests/mpi share: a scratch folder, a small
// synthetic data set, running the `lowbit` CLI (optionally under mpirun) and comparing the
// tensors of two checkpoints.
// Relative difference of a tensor a against the reference b: max_i |a_i - b_i| / max_i |b_i|.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "core/data/synthetic.h"
#include "core/serialize.h"

namespace lowbit::testing {

namespace fs = std::filesystem;

inline std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

inline fs::path work_dir() {
  static fs::path p = [] {
    fs::path d = fs::temp_directory_path() / ("lowbit_mpi_test_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  return p;
}

// 1024 train / 256 test synthetic 28x28 images: 8 global batches of 128.
inline std::string data_spec() {
  static std::string spec = [] {
    SyntheticOptions o;
    o.train_size = 1024;
    o.test_size = 256;
    return write_synthetic_idx((work_dir() / "data").string(), o, false);
  }();
  return spec;
}

struct RunResult {
  int status = -1;
  std::string output;  // stdout + stderr
  double seconds = 0;
};

inline RunResult run(const std::string& cmd) {
  RunResult r;
  const auto t0 = std::chrono::steady_clock::now();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// Runs the command, failing the test with its output when it does not succeed.
inline void run_ok(const std::string& cmd) {
  const RunResult r = run(cmd);
  INFO(cmd);
  INFO(r.output);
  REQUIRE(r.status == 0);
}

inline std::string lowbit_exe() { return env("LOWBIT_EXE"); }

// K = 4 steps of global batch 128 by default; `length` replaces the epochs/steps.
// lr 0.01: at the default 0.05 this tiny run's first steps are unstable (loss rises above ln 10)
// and chaotic: a 1e-6 relative nudge of the weights, in ONE process, already moves some momentum
// buffers by 1e-2 a few steps later, so only bit-identical gradients can meet a tight bound there.
inline std::string train_args(const fs::path& out, const std::string& extra,
                              const std::string& length = "--epochs 1 --max-steps 4", const std::string& lr = "0.01",
                              int threads = 1) {
  return " train --model convnet --data " + data_spec() + " --batch 128 --lr " + lr + " " + length +
         " --eval-limit 128 --seed 7 --threads " + std::to_string(threads) + " --sync-bn --out " + out.string() +
         " " + extra;
}

// Max over the model's and the optimizer's tensors of the relative difference (see top).
inline double max_relative_difference(const fs::path& a_ckpt, const fs::path& b_ckpt, std::string* worst = nullptr) {
  const StateDict a = load_state_dict_file(a_ckpt.string()), b = load_state_dict_file(b_ckpt.string());
  REQUIRE(a.tensors.size() == b.tensors.size());
  double worst_diff = 0;
  for (const auto& [name, tb] : b.tensors) {
    REQUIRE(a.tensors.count(name) == 1);
    const Tensor& ta = a.tensors.at(name);
    REQUIRE(ta.numel() == tb.numel());
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < tb.numel(); ++i) {
      diff = std::max(diff, std::fabs(static_cast<double>(ta.data()[i]) - tb.data()[i]));
      scale = std::max(scale, std::fabs(static_cast<double>(tb.data()[i])));
    }
    const double rel = scale > 0 ? diff / scale : diff;
    if (std::isnan(rel) || rel > worst_diff) {
      worst_diff = std::isnan(rel) ? INFINITY : rel;
      if (worst) *worst = name;
    }
  }
  return worst_diff;
}

}  // namespace lowbit::testing
