// bench_gemm.cpp: the kernel benchmark behind `lowbit bench gemm` (see bench_gemm.h).
#include "quant/kernels/bench_gemm.h"

#include <cblas.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>
#include <vector>

#include "core/arch.h"
#include "core/error.h"
#include "core/threading.h"
#include "quant/kernels/gemm.h"
#include "quant/kernels/gemm_internal.h"
#include "quant/kernels/bench_util.h"
#include "quant/kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

using bench::median;
using bench::now_s;
using bench::probe_peak_gmacs;
using bench::random_codes;
using bench::time_per_call;

// The lower of the two nominal MAC/cycle/core design points of the ISA's multiply-accumulate
// (the other is twice it): vpdpbusd zmm 64 (Zen 4: 2x256-bit halves) or 128 (Zen 5: two full
// 512-bit pipes); vpdpbusd ymm 32 (one 256-bit pipe) or 64 (two); vpmaddubsw+vpmaddwd 32
// (Zen 4) or 64 (Zen 5).
double nominal_macs_per_cycle_low(Isa isa) { return runs_avx512_kernels(isa) ? 64.0 : 32.0; }

struct Case {
  const char* kernel;
  int wbits, abits;
  int64_t m, n, k;
};

std::vector<Case> bench_cases(bool quick) {
  std::vector<Case> c;
  if (quick) {
    c.push_back({"gemm", 8, 8, 64, 64, 64});
    c.push_back({"gemm", 4, 4, 96, 48, 80});
    c.push_back({"gemm", 2, 2, 64, 32, 144});
    c.push_back({"gemv", 4, 4, 1, 256, 256});
    c.push_back({"gemv", 2, 8, 2, 128, 192});
    return c;
  }
  const int pairs[9][2] = {{8, 8}, {4, 4}, {2, 2}, {8, 4}, {4, 8}, {4, 2}, {2, 4}, {2, 8}, {8, 2}};
  for (auto& p : pairs) c.push_back({"gemm", p[0], p[1], 1024, 1024, 1024});
  for (int i = 0; i < 3; ++i) c.push_back({"gemm", pairs[i][0], pairs[i][1], 2048, 2048, 2048});
  // resnet20 conv layers as im2col GEMMs, batch 8: M = 8*H*W rows, N = C_out, K = 9*C_in.
  for (int i = 0; i < 3; ++i) {
    c.push_back({"conv", pairs[i][0], pairs[i][1], 8 * 32 * 32, 16, 9 * 16});
    c.push_back({"conv", pairs[i][0], pairs[i][1], 8 * 16 * 16, 32, 9 * 32});
    c.push_back({"conv", pairs[i][0], pairs[i][1], 8 * 8 * 8, 64, 9 * 64});
  }
  // GEMV with the packed weights in L2 (512 KiB of a 1 MiB L2), 1..8 rows.
  for (int64_t m : {1, 2, 4, 8}) {
    c.push_back({"gemv", 8, 8, m, 512, 1024});
    c.push_back({"gemv", 4, 4, m, 1024, 1024});
    c.push_back({"gemv", 2, 2, m, 1024, 2048});
  }
  // batch-1 GEMV: weights in L3 (4096^2: 4-16 MiB) and in DRAM (16384^2).
  for (int i = 0; i < 3; ++i) c.push_back({"gemv", pairs[i][0], pairs[i][1], 1, 4096, 4096});
  c.push_back({"gemv", 4, 8, 1, 4096, 4096});
  c.push_back({"gemv", 2, 8, 1, 4096, 4096});
  for (int i = 0; i < 3; ++i) c.push_back({"gemv", pairs[i][0], pairs[i][1], 1, 16384, 16384});
  // a few rows
  for (int64_t m : {2, 4, 8})
    for (int i = 1; i < 3; ++i) c.push_back({"gemv", pairs[i][0], pairs[i][1], m, 4096, 4096});
  c.push_back({"gemv", 8, 8, 4, 4096, 4096});
  return c;
}

}  // namespace

double infer_clock_ghz(bool cpu_time) {
#if LOWBIT_ARCH_X86  // the clock loop is x86 assembly
  std::vector<double> ghz;
  for (int rep = 0; rep < 5; ++rep) {
    // Register operands: Golden Cove and later cores fold chains of immediate adds at rename
    // (two per cycle), which made this loop read twice the clock there.
    uint64_t x = 0, one = 1;
    const int64_t n = 20000000;
    const double t0 = now_s(cpu_time);
    for (int64_t i = 0; i < n; ++i)
      asm volatile("add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0" : "+r"(x) : "r"(one));
    ghz.push_back(4.0 * static_cast<double>(n) / (now_s(cpu_time) - t0) / 1e9);
  }
  return *std::max_element(ghz.begin(), ghz.end());  // interference only ever slows it down
#else
  (void)cpu_time;
  return 0.0;
#endif
}

nlohmann::json bench_gemm(const BenchGemmOptions& opt) {
  set_num_threads(opt.threads);
  const int threads = num_threads();
  LOWBIT_CHECK(!opt.cpu_time || threads == 1, "bench_gemm: BenchGemmOptions::cpu_time needs threads == 1 (got ", threads,
               "): a thread's CPU clock does not see the other threads' work");
  const bool cpu = opt.cpu_time;
  const Isa isa = active_isa_level();
  const double clock = infer_clock_ghz(cpu);
  // Nominal MAC/cycle/core of the ISA's multiply-accumulate on THIS core, from the probe loop
  // rounded to the nearer of its two design points (nominal_macs_per_cycle_low).
  double macs_per_cycle = 0.0;
  if (kernel_table(isa).peak_probe != nullptr && clock > 0) {
    double best = 0.0;
    for (int i = 0; i < 5; ++i) best = std::max(best, probe_peak_gmacs(isa, cpu));
    // Nearest known design point (log scale): a time-sliced clock loop must not invent a 256.
    const double measured = best / clock;
    const double lo = nominal_macs_per_cycle_low(isa);
    macs_per_cycle = std::abs(std::log2(measured / lo)) <= std::abs(std::log2(measured / (2 * lo))) ? lo : 2 * lo;
  }
  nlohmann::json out;
  out["isa"] = isa_name(isa);
  out["threads"] = threads;
  out["clock_ghz"] = clock;
  out["timer"] = cpu ? "thread_cpu" : "wall";
  out["peak_macs_per_cycle_per_core"] = macs_per_cycle;
  out["peak_gmacs_per_core"] = macs_per_cycle * clock;
  out["results"] = nlohmann::json::array();
  for (const Case& cs : bench_cases(opt.quick)) {
    std::ostringstream tag;
    tag << cs.kernel << " w" << cs.wbits << "a" << cs.abits << " " << cs.m << "x" << cs.n << "x" << cs.k;
    if (!opt.filter.empty() && tag.str().find(opt.filter) == std::string::npos) continue;
    PackedWeights w;
    {
      auto wc = random_codes(cs.n * cs.k, cs.wbits, 11 + cs.n);
      w = pack_weights(wc.data(), cs.n, cs.k, cs.k, cs.wbits);
    }
    auto ac = random_codes(cs.m * cs.k, cs.abits, 7 + cs.m);
    PackedActivations a = pack_activations(ac.data(), cs.m, cs.k, cs.k, cs.abits);
    std::vector<int32_t> c(static_cast<size_t>(cs.m * cs.n));
    // OpenBLAS operands of the same shape (fp32: 4 bytes per weight).
    std::vector<float> fa(static_cast<size_t>(cs.m * cs.k)), fc(static_cast<size_t>(cs.m * cs.n));
    std::vector<float> fw(static_cast<size_t>(cs.n * cs.k));
    for (size_t i = 0; i < fa.size(); ++i) fa[i] = static_cast<float>(ac[i]) * 0.01f;
    for (size_t i = 0; i < fw.size(); ++i) fw[i] = static_cast<float>(i % 13) * 0.01f - 0.06f;
    const int M = static_cast<int>(cs.m), N = static_cast<int>(cs.n), K = static_cast<int>(cs.k);
    auto ours = [&] { gemm(a, w, Epilogue{}, c.data(), cs.n); };
    auto blas = [&] {
      if (M == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.f, fw.data(), K, fa.data(), 1, 0.f, fc.data(), 1);
      else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, fa.data(), K, fw.data(), K,
                    0.f, fc.data(), N);
    };
    std::vector<double> t_ours, t_blas, probe;
    for (int rep = 0; rep < std::max(1, opt.repeats); ++rep) {  // interleaved: same noise
      t_ours.push_back(time_per_call(ours, opt.min_sample_s, cpu));
      // OpenBLAS gets the same thread count, outside any TBB task; pinned back to 1 after.
      openblas_set_num_threads(threads);
      t_blas.push_back(time_per_call(blas, opt.min_sample_s, cpu));
      openblas_set_num_threads(1);
      probe.push_back(probe_peak_gmacs(isa, cpu));  // single-core peak right now (same noise)
    }
    const double macs = static_cast<double>(cs.m) * static_cast<double>(cs.n) * static_cast<double>(cs.k);
    const double g = macs / median(t_ours) / 1e9, gs = macs / median(t_blas) / 1e9;
    const double peak = macs_per_cycle * clock * threads;
    out["results"].push_back({{"kernel", cs.kernel}, {"wbits", cs.wbits}, {"abits", cs.abits},
                              {"m", cs.m}, {"n", cs.n}, {"k", cs.k}, {"threads", threads},
                              {"gmacs", g}, {"sgemm_gmacs", gs}, {"ratio", g / gs},
                              {"pct_peak", peak > 0 ? 100.0 * g / peak : 0.0},
                              {"probe_peak_gmacs", median(probe)},
                              {"pct_probe_peak", median(probe) > 0 ? 100.0 * g / (median(probe) * threads) : 0.0}});
  }
  return out;
}

std::string format_bench_gemm(const nlohmann::json& r) {
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "isa %s, threads %d, %s timer, inferred clock %.2f GHz (peak %.0f MAC/cycle/core)\n",
                r["isa"].get<std::string>().c_str(), r["threads"].get<int>(),
                r.value("timer", std::string("wall")).c_str(), r["clock_ghz"].get<double>(),
                r["peak_macs_per_cycle_per_core"].get<double>());
  os << line;
  std::snprintf(line, sizeof line, "%-6s %-5s %7s %6s %6s %4s %9s %9s %7s %6s %6s %7s\n", "kernel", "bits", "m", "n",
                "k", "thr", "GMAC/s", "sgemm", "ratio", "%peak", "probe", "%probe");
  os << line;
  for (const auto& e : r["results"]) {
    std::snprintf(line, sizeof line, "%-6s w%da%d %7lld %6lld %6lld %4d %9.1f %9.1f %7.2f %6.1f %6.1f %7.1f\n",
                  e["kernel"].get<std::string>().c_str(), e["wbits"].get<int>(), e["abits"].get<int>(),
                  static_cast<long long>(e["m"].get<int64_t>()), static_cast<long long>(e["n"].get<int64_t>()),
                  static_cast<long long>(e["k"].get<int64_t>()), e["threads"].get<int>(),
                  e["gmacs"].get<double>(), e["sgemm_gmacs"].get<double>(), e["ratio"].get<double>(),
                  e["pct_peak"].get<double>(), e["probe_peak_gmacs"].get<double>(),
                  e["pct_probe_peak"].get<double>());
    os << line;
  }
  return os.str();
}

}  // namespace lowbit::kernels
