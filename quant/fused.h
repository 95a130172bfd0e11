// fused.h: the loop helpers the quantizers' fused forward/backward passes share (internal).
// Work is cut into fixed chunks of kQuantGrain elements, run with parallel_for when there is more
// than one chunk, and per-chunk reductions are summed in chunk order in double precision: the
// result depends neither on the thread count nor on the scheduling (design: determinism).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/threading.h"

namespace lowbit::quant_detail {

constexpr int64_t kQuantGrain = int64_t{1} << 15;  // elements per task: far above task overhead

// Round half to even, equal to std::nearbyint under the default rounding mode for |v| < 2^22
// (every caller rounds an already clipped code, |v| <= 255). Adding and subtracting 1.5 * 2^23
// leaves no fraction bits, so the FPU's round-to-nearest-even does the rounding. Why not
// std::nearbyint: without SSE4.1 (the default build) it is a libm call that saves and restores
// the FP environment per element, ~8x slower than the whole fused pass. Not valid under
// -ffast-math (which could fold the two additions away); lowbit never uses it.
inline float round_half_even(float v) {
  constexpr float kMagic = 12582912.f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}

// The rounding of the integer runtime's vectorised quantize loops (ActCodeRule::quantize_many):
// round_half_even, except where the target has FMA: there the compiler may contract the multiply
// before it into a fused multiply-add, which drops the product's rounding and can move a tie, so
// the exact call is used.
inline float round_code(float v) {
#if defined(__FMA__) || defined(__FMA4__)
  return std::nearbyint(v);
#else
  return round_half_even(v);
#endif
}

// body(begin, end) over [0, n) in chunks.
template <class Body>
void for_chunks(int64_t n, Body&& body) {
  const int64_t chunks = (n + kQuantGrain - 1) / kQuantGrain;
  if (chunks <= 1) {
    if (n > 0) body(int64_t{0}, n);
    return;
  }
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) body(c * kQuantGrain, std::min(n, (c + 1) * kQuantGrain));
  });
}

// K reductions: body(begin, end, double* acc) adds into acc[0..K); returns the chunk-ordered sums.
template <int K, class Body>
std::vector<double> reduce_chunks(int64_t n, Body&& body) {
  const int64_t chunks = std::max<int64_t>(1, (n + kQuantGrain - 1) / kQuantGrain);
  std::vector<double> partial(static_cast<size_t>(chunks * K), 0.0);
  if (chunks == 1) {
    body(int64_t{0}, n, partial.data());
  } else {
    parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c)
        body(c * kQuantGrain, std::min(n, (c + 1) * kQuantGrain), partial.data() + c * K);
    });
  }
  std::vector<double> total(K, 0.0);
  for (int64_t c = 0; c < chunks; ++c)
    for (int k = 0; k < K; ++k) total[k] += partial[static_cast<size_t>(c * K + k)];
  return total;
}

// Max of |x| over [0, n) (0 for n = 0); chunk maxima combined in order.
inline float max_abs(const float* x, int64_t n) {
  const int64_t chunks = std::max<int64_t>(1, (n + kQuantGrain - 1) / kQuantGrain);
  std::vector<float> partial(static_cast<size_t>(chunks), 0.f);
  for_chunks(n, [&](int64_t b, int64_t e) {
    float m = 0.f;
    for (int64_t i = b; i < e; ++i) m = std::max(m, std::fabs(x[i]));
    partial[static_cast<size_t>(b / kQuantGrain)] = m;
  });
  float m = 0.f;
  for (float v : partial) m = std::max(m, v);
  return m;
}

}  // namespace lowbit::quant_detail
