// test_data_parallel.cpp: `mpirun -np 2 lowbit train` against one process, end to end through the
// CLI: same parameters, buffers and optimizer state (max relative difference <= 1e-5 with --sync-bn
// and global batch 128), resume from a 2-rank checkpoint (with 2 ranks: bit-identical; with 1:
// within the bound), a bad data file on one rank and a NaN loss end the job with one error within
// seconds, and `bench train` reports once for all ranks.
// Relative difference of a tensor a against the reference b: max_i |a_i - b_i| / max_i |b_i|.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/comm.h"
#include "core/data/synthetic.h"
#include "core/serialize.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

fs::path work_dir() {
  static fs::path p = [] {
    fs::path d = fs::temp_directory_path() / ("lowbit_mpi_test_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  return p;
}

// 1024 train / 256 test synthetic 28x28 images: 8 global batches of 128.
std::string data_spec() {
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

RunResult run(const std::string& cmd) {
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

std::string lowbit_exe() { return env("LOWBIT_EXE"); }
// `timeout` turns a hang into a failure instead of a stuck test.
std::string mpirun(int ranks) {
  return "timeout 300 " + env("MPIRUN") + " --oversubscribe -np " + std::to_string(ranks) + " ";
}

// K = 4 steps of global batch 128 by default; `length` replaces the epochs/steps.
// lr 0.01: at the default 0.05 this tiny run's first steps are unstable (loss rises above ln 10)
// and chaotic: a 1e-6 relative nudge of the weights, in ONE process, already moves some momentum
// buffers by 1e-2 a few steps later, so no summation order could meet the bound there.
std::string train_args(const fs::path& out, const std::string& extra,
                       const std::string& length = "--epochs 1 --max-steps 4", const std::string& lr = "0.01") {
  return " train --model convnet --data " + data_spec() + " --batch 128 --lr " + lr + " " + length +
         " --eval-limit 128 --seed 7 --threads 1 --sync-bn --out " + out.string() + " " + extra;
}

// Runs the command, failing the test with its output when it does not succeed.
void run_ok(const std::string& cmd) {
  const RunResult r = run(cmd);
  INFO(cmd);
  INFO(r.output);
  REQUIRE(r.status == 0);
}

// Max over the model's and the optimizer's tensors of the relative difference (see top).
double max_relative_difference(const fs::path& a_ckpt, const fs::path& b_ckpt, std::string* worst = nullptr) {
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

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// One equivalence case: the extra flags select the model variant (quantization method, ...).
struct Variant {
  const char* name;
  const char* flags;
};
// Adding a variant is one line (name without spaces: it names the output folder). PACT-SAWB W2A2
//   {"pact-sawb-w2a2", "--method pact-sawb --wbits 2 --abits 2 --pact-init fixed --float-epochs 0"},
// is NOT in the list: it cannot meet 1e-5 against one process by any summation order. One process
// alone, same seed, --threads 1 vs --threads 4, differs by 4.5e-2 after ONE step (conv2d's sgemm
// chunking depends on the thread count; ulp-level differences in the conv outputs move 2-bit
// rounding decisions); 2 ranks vs 1 process differ by 5e-2, the same size. W2A2 is covered below
// by "quantized training keeps the replicas identical".
const std::vector<Variant> kVariants = {
    {"fp32", ""},
};

}  // namespace

TEST_CASE("2 ranks with --sync-bn and global batch 128 match one process") {
  for (const Variant& v : kVariants) {
    const std::string variant = v.name;
    CAPTURE(variant);
    const fs::path one = work_dir() / (std::string("one_") + v.name), two = work_dir() / (std::string("two_") + v.name);
    run_ok(lowbit_exe() + train_args(one, v.flags));
    run_ok(mpirun(2) + lowbit_exe() + train_args(two, v.flags));
    std::string worst;
    const double rel = max_relative_difference(two / "last.ckpt", one / "last.ckpt", &worst);
    INFO("worst tensor: " << worst << ", relative difference " << rel);
    MESSAGE(variant << ": max relative difference 2 ranks vs 1 process " << rel << " (" << worst << ")");
    CHECK(rel <= 1e-5);
    CHECK(rel > 0);  // sanity: the 2-rank run did run in parallel (different summation order)
    // Only rank 0 writes metrics: one line per epoch.
    std::ifstream f(two / "metrics.jsonl");
    std::string line;
    int lines = 0;
    while (std::getline(f, line)) ++lines;
    CHECK(lines == 1);
  }
}

TEST_CASE("quantized training keeps the replicas identical (PACT-SAWB W2A2, data-driven inits)") {
  // pact-init mse initialises alpha from the first batch (each rank's own slice; rank 0's values are
  // broadcast), the input quantizer's running max is taken over the global batch: end_epoch's
  // replica check would fail the run if any rank's parameters or buffers differed from rank 0's.
  const fs::path out = work_dir() / "w2a2";
  run_ok(mpirun(2) + lowbit_exe() +
         train_args(out, "--method pact-sawb --wbits 2 --abits 2 --pact-init mse --float-epochs 0"));
  const StateDict sd = load_state_dict_file((out / "last.ckpt").string());
  int alphas = 0;
  for (const auto& [name, t] : sd.tensors)
    if (name.ends_with("act_quantizer.alpha")) {
      ++alphas;
      CHECK(t.data()[0] != 10.f);  // initialised from data, then trained
    }
  CHECK(alphas >= 2);
}

TEST_CASE("per-rank BatchNorm (no --sync-bn) trains and agrees on the running statistics") {
  // The running statistics differ per rank during the epoch; end_epoch averages them, then its
  // replica check passes.
  run_ok(mpirun(2) + lowbit_exe() + " train --model convnet --data " + data_spec() +
         " --batch 128 --epochs 2 --max-steps 2 --eval-limit 64 --threads 1 --out " + (work_dir() / "local_bn").string());
}

TEST_CASE("a 2-rank checkpoint resumes to the same result") {
  const std::string epochs = "--epochs 2 --max-steps 3";  // 6 steps, the checkpoint after 3
  const fs::path full = work_dir() / "resume_full", part = work_dir() / "resume_part",
                 part1 = work_dir() / "resume_part_one";
  run_ok(mpirun(2) + lowbit_exe() + train_args(full, "", epochs));
  run_ok(mpirun(2) + lowbit_exe() + train_args(part, "--stop-after 1", epochs));
  fs::create_directories(part1);
  fs::copy_file(part / "last.ckpt", part1 / "last.ckpt");
  run_ok(mpirun(2) + lowbit_exe() + train_args(part, "--resume", epochs));
  CHECK(max_relative_difference(part / "last.ckpt", full / "last.ckpt") == 0.0);  // same ranks: bit for bit
  run_ok(lowbit_exe() + train_args(part1, "--resume", epochs));                      // any N: one process
  CHECK(max_relative_difference(part1 / "last.ckpt", full / "last.ckpt") <= 1e-5);
}

TEST_CASE("a bad data file on one rank ends the job with one error, quickly") {
  // A copy of the data set whose training images are truncated, given to rank 1 only (MPMD).
  const fs::path good = data_spec().substr(4), bad = work_dir() / "bad_data";
  fs::remove_all(bad);
  fs::copy(good, bad);
  for (const auto& e : fs::directory_iterator(bad))
    if (e.path().filename().string().starts_with("train-images")) fs::resize_file(e.path(), 1000);
  const fs::path out = work_dir() / "bad_run";
  const std::string common = " train --model convnet --batch 128 --epochs 1 --max-steps 4 --threads 1 --out " +
                             out.string() + " --data ";
  const RunResult r = run("timeout 120 " + env("MPIRUN") + " --oversubscribe -np 1 " + lowbit_exe() + common + data_spec() +
                          " : -np 1 " + lowbit_exe() + common + "idx:" + bad.string());
  INFO(r.output);
  CHECK(r.status != 0);
  CHECK(r.status != 124);  // not the timeout: no hang
  CHECK(r.seconds < 30);
  CHECK(count(r.output, "error: rank 1: ") == 1);
  CHECK(count(r.output, "error:") == 1);
  CHECK(r.output.find("train-images") != std::string::npos);  // names the file
}

TEST_CASE("a NaN loss stops every rank at the same step with one error") {
  const RunResult r = run(mpirun(2) + lowbit_exe() + train_args(work_dir() / "nan_run", "", "--epochs 1 --max-steps 4", "1e30"));
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK(r.seconds < 60);
  CHECK(count(r.output, "error: loss became") == 1);
  CHECK(count(r.output, "error:") == 1);
}

TEST_CASE("bench train under mpirun reports once, for all ranks") {
  const RunResult r = run(mpirun(2) + lowbit_exe() + " bench train --model convnet --batch 64 --threads 1 --seconds 0.5 "
                                                  "--warmup 1 --json");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(count(r.output, "\"images_per_s\"") == 1);
  CHECK(count(r.output, "\"ranks\":2") == 1);
  CHECK(count(r.output, "bench train:") == 1);
}

int main(int argc, char** argv) {
  if (!comm_has_mpi()) {
    std::puts("lowbit was built without MPI (meson -Dmpi=disabled or no Open MPI found): suite skipped");
    return 77;  // meson: SKIP
  }
  if (env("MPIRUN").empty()) {
    std::puts("lowbit was built with MPI but meson found no mpirun/mpiexec: install openmpi-bin");
    return 1;
  }
  doctest::Context context(argc, argv);
  const int status = context.run();
  if (status == 0) fs::remove_all(work_dir());
  return status;
}
