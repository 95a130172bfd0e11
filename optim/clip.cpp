// clip.cpp: global gradient norm with a fixed-chunk double reduction, so the result is the
// same for every thread count.
#include "optim/clip.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/threading.h"

namespace lowbit {

namespace {

constexpr int64_t kChunk = int64_t{1} << 18;
constexpr int64_t kParallelThreshold = int64_t{1} << 20;

double sum_squares(const float* __restrict g, int64_t n) {
  // Several partial sums let the compiler vectorise the double reduction without -ffast-math.
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    const double a = g[k], b = g[k + 1], c = g[k + 2], d = g[k + 3];
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; k < n; ++k) s0 += static_cast<double>(g[k]) * g[k];
  return (s0 + s1) + (s2 + s3);
}

// Fixed chunks of kChunk summed in order: deterministic regardless of scheduling.
double tensor_sum_squares(const float* g, int64_t n) {
  if (n <= kParallelThreshold) return sum_squares(g, n);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  parallel_for(0, chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      const int64_t lo = c * kChunk, hi = std::min(n, lo + kChunk);
      partial[static_cast<size_t>(c)] = sum_squares(g + lo, hi - lo);
    }
  });
  double s = 0;
  for (double p : partial) s += p;
  return s;
}

void scale_in_place(float* __restrict g, int64_t n, float coef) {
  for (int64_t k = 0; k < n; ++k) g[k] *= coef;
}

}  // namespace

double grad_norm(const std::vector<Tensor>& params) {
  double total = 0;
  for (const Tensor& p : params) {
    if (!p.defined()) continue;
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    total += tensor_sum_squares(g.data(), g.numel());
  }
  return std::sqrt(total);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  LOWBIT_CHECK(max_norm > 0 && !std::isnan(max_norm), "clip_grad_norm: max_norm must be > 0, got ",
               max_norm);
  const double total = grad_norm(params);
  if (!std::isfinite(total) || total <= max_norm) return total;
  const float coef = static_cast<float>(max_norm / (total + 1e-6));
  for (const Tensor& p : params) {
    if (!p.defined()) continue;
    Tensor g = p.grad();
    if (!g.defined()) continue;
    float* data = g.data();
    const int64_t n = g.numel();
    if (n <= kParallelThreshold)
      scale_in_place(data, n, coef);
    else
      parallel_for(0, n, kChunk, [&](int64_t b, int64_t e) { scale_in_place(data + b, e - b, coef); });
  }
  return total;
}

}  // namespace lowbit
