// bench_util.cpp: the benchmarks' shared helpers (bench_util.h).
#include "quant/kernels/bench_util.h"

#include <time.h>

#include <algorithm>
#include <chrono>

#include "quant/kernels/kernel_table.h"
#include "quant/kernels/packing.h"

namespace lowbit::kernels::bench {

double now_s(bool cpu) {
  if (cpu) {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double time_per_call(const std::function<void()>& fn, double min_s, bool cpu) {
  fn();  // warm caches / scratch buffers
  int64_t calls = 0;
  const double t0 = now_s(cpu);
  double t = t0;
  do {
    fn();
    ++calls;
    t = now_s(cpu);
  } while (t - t0 < min_s);
  return (t - t0) / static_cast<double>(calls);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double probe_peak_gmacs(Isa isa, bool cpu) {
  const KernelTable::ProbeFn probe = kernel_table(isa).peak_probe;
  if (probe == nullptr) return 0.0;
  const int64_t iters = 200000;
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    const double t0 = now_s(cpu);
    const double macs = probe(iters);
    best = std::max(best, macs / (now_s(cpu) - t0) / 1e9);
  }
  return best;
}

std::vector<uint8_t> random_codes(int64_t count, int bits, uint64_t seed) {
  std::vector<uint8_t> v(static_cast<size_t>(count));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  const int mask = max_code(bits);
  for (auto& x : v) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x = static_cast<uint8_t>(s & static_cast<uint64_t>(mask));
  }
  return v;
}

}  // namespace lowbit::kernels::bench
