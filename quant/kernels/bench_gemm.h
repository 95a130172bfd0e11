// bench_gemm.h: the `lowbit bench gemm` benchmark of the packed low-bit GEMM/GEMV kernels.
// For each kernel and shape it reports GMAC/s, the OpenBLAS sgemm (sgemv for one row) GMAC/s of
// the same shape measured in the same run (interleaved repeats, medians), and their ratio:
//   {"isa": ..., "threads": ..., "clock_ghz": ..., "results": [{"kernel", "wbits", "abits",
//    "m", "n", "k", "threads", "gmacs", "sgemm_gmacs", "ratio", "pct_peak", "probe_peak_gmacs",
//    "pct_probe_peak"}, ...]}
// pct_peak is against the nominal peak at the inferred clock (peak_macs_per_cycle_per_core:
// the probe loop's MAC/cycle rounded to a power of two: vpdpbusd zmm 64 on Zen 4, 128 on Zen 5;
// vpdpbusd ymm (avx_vnni) 32 or 64; vpmaddubsw+vpmaddwd 32 on Zen 4), times the thread count.
// On a shared, time-sliced machine the clock loop and the kernel see different interference, so
// each measurement also times a register-only peak loop of the ISA (probe_peak_gmacs, one core,
// interleaved with the kernel) and pct_probe_peak = gmacs / (probe * threads): the % of what the
// core delivered then.
// cpu_time (1 thread only) times everything with the thread's CPU clock instead of the wall
// clock: on a time-sliced machine the kernel is then charged only for the time it ran.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace lowbit::kernels {

struct BenchGemmOptions {
  int threads = 0;       // 0 = all cores (lowbit::set_num_threads)
  bool quick = false;    // small shapes only (tests)
  int repeats = 5;       // interleaved samples per measurement; the median is reported
  double min_sample_s = 0.05;  // each sample repeats the call until at least this long
  std::string filter;    // substring of "kernel wWaA MxNxK" to run a subset ("" = all)
  bool cpu_time = false; // time with CLOCK_THREAD_CPUTIME_ID (requires threads == 1)
};

nlohmann::json bench_gemm(const BenchGemmOptions& opt);
// A fixed-width text table of bench_gemm's result.
std::string format_bench_gemm(const nlohmann::json& result);
// Inferred core clock in GHz from a timed chain of dependent integer adds (1 add/cycle),
// timed with the wall clock or (cpu_time) the calling thread's CPU clock; 0 in a build without
// x86 (core/arch.h), where that assembly loop is not written.
double infer_clock_ghz(bool cpu_time = false);

}  // namespace lowbit::kernels
