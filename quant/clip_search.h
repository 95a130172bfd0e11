// clip_search.h: statistics that pick a clip value from data, shared by the data-driven inits
// (PACT, QIL activations, input quantizer) and by calibration.
//   mse_optimal_clip:  argmin over alpha in {max*k/100, k = 1..100} of
//                      sum_{x > 0} (Q_b(clip(x, 0, alpha)) - x)^2,  Q_b the b-bit uniform grid on
//                      [0, alpha] (PACT's forward). Negative x cost the same for every alpha.
//   positive_percentile: the p-th percentile (0..100) of the positive values.
// Both look at most 65536 values (an even stride over x) so an init costs one cheap pass.
#pragma once
#include <cstdint>

namespace lowbit {

float mse_optimal_clip(const float* x, int64_t n, int bits);
float positive_percentile(const float* x, int64_t n, double percent);

}  // namespace lowbit
