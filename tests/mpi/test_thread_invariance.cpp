// test_thread_invariance.cpp: one process, same seed, --threads 1, 2 and 4 train to bit-identical
// parameters, buffers and optimizer state after K steps, for FP32 and PACT-SAWB W2A2: every batch
// reduction is the fixed chunk tree of core/deterministic_sum.h. This is what makes N ranks equal
// one process too (test_data_parallel.cpp); it needs no MPI, so it runs in every build.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

#include "cli_run.h"

using namespace lowbit::testing;

TEST_CASE("--threads 1, 2 and 4 train to bit-identical checkpoints") {
  struct Variant {
    const char* name;
    const char* flags;
  };
  for (const Variant& v : {Variant{"fp32", ""},
                           Variant{"pact-sawb-w2a2", "--method pact-sawb --wbits 2 --abits 2 --pact-init fixed "
                                                     "--float-epochs 0"}}) {
    const std::string variant = v.name;
    CAPTURE(variant);
    const fs::path ref = work_dir() / (variant + "_t1");
    run_ok(lowbit_exe() + train_args(ref, v.flags, "--epochs 1 --max-steps 4", "0.01", 1));
    for (int threads : {2, 4}) {
      CAPTURE(threads);
      const fs::path out = work_dir() / (variant + "_t" + std::to_string(threads));
      run_ok(lowbit_exe() + train_args(out, v.flags, "--epochs 1 --max-steps 4", "0.01", threads));
      std::string worst;
      const double rel = max_relative_difference(out / "last.ckpt", ref / "last.ckpt", &worst);
      INFO("worst tensor: " << worst << ", relative difference " << rel);
      CHECK(rel == 0.0);
    }
  }
  fs::remove_all(work_dir());
}
