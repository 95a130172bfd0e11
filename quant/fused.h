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
#include "quant/runtime/act_code.h"  // quant_detail::round_half_even, round_code

namespace lowbit::quant_detail {

constexpr int64_t kQuantGrain = int64_t{1} << 15;  // elements per task: far above task overhead

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
