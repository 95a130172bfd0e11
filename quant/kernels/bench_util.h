// bench_util.h: what the kernel benchmarks (bench_gemm.cpp, bench_conv.cpp) share: clocks, the
// repeat-until-long-enough timer, medians, the level's probe rate and reproducible random codes.
// Not a public header.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/cpu_features.h"

namespace lowbit::kernels::bench {

// Seconds on the wall clock, or (cpu) CPU seconds of the calling thread.
double now_s(bool cpu = false);
// Seconds per call: one warm-up call, then fn repeated until min_s has passed.
double time_per_call(const std::function<void()>& fn, double min_s, bool cpu);
double median(std::vector<double> v);
// GMAC/s of the level's register-only peak loop on one core (kernel_table.h), best of 3; 0 at
// the scalar level (no probe).
double probe_peak_gmacs(Isa isa, bool cpu);
// count codes of `bits` bits from a xorshift stream seeded by seed.
std::vector<uint8_t> random_codes(int64_t count, int bits, uint64_t seed);

}  // namespace lowbit::kernels::bench
