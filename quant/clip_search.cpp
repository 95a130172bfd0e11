// clip_search.cpp: grid search of the MSE-optimal clip and percentiles on a strided sample.
#include "quant/clip_search.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace lowbit {

namespace {
constexpr int64_t kMaxSample = 65536;

// The positive values of an even-stride sample of x.
std::vector<float> positive_sample(const float* x, int64_t n) {
  const int64_t stride = std::max<int64_t>(1, n / kMaxSample);
  std::vector<float> v;
  v.reserve(static_cast<size_t>(std::min(n, kMaxSample) + 1));
  for (int64_t i = 0; i < n; i += stride)
    if (x[i] > 0.f) v.push_back(x[i]);
  return v;
}
}  // namespace

float mse_optimal_clip(const float* x, int64_t n, int bits) {
  const std::vector<float> v = positive_sample(x, n);
  if (v.empty()) return 1.f;  // nothing positive seen: keep a neutral clip
  const float vmax = *std::max_element(v.begin(), v.end());
  const float levels = static_cast<float>((1 << bits) - 1);
  float best_alpha = vmax;
  double best_err = INFINITY;
  for (int k = 1; k <= 100; ++k) {
    const float a = vmax * static_cast<float>(k) / 100.f;
    const float inv = levels / a, scale = a / levels;
    double err = 0;
    for (float xi : v) {
      const float q = std::nearbyint(std::min(xi, a) * inv) * scale;
      err += static_cast<double>(q - xi) * (q - xi);
    }
    if (err < best_err) {
      best_err = err;
      best_alpha = a;
    }
  }
  return best_alpha;
}

float positive_percentile(const float* x, int64_t n, double percent) {
  std::vector<float> v = positive_sample(x, n);
  if (v.empty()) return 1.f;
  const double pos = std::clamp(percent, 0.0, 100.0) / 100.0 * static_cast<double>(v.size() - 1);
  const size_t k = static_cast<size_t>(std::llround(pos));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace lowbit
