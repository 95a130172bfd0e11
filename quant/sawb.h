// sawb.h: SAWB weight quantizer (Choi et al., arXiv:1807.06964): statistics-aware clip, no learning.
// Every training forward (quantization enabled) recomputes, over the whole layer,
//   alpha_w = c1 * sqrt(E[w^2]) - c2 * E[|w|]     (sqrt(E[w^2]) not mean-centred)
// falling back to max|w| when alpha_w <= 0. Coefficients (c1, c2): 2b (3.212, 2.178),
// 3b (7.509, 6.892), 4b (12.68, 12.80), 5b (17.74, 18.64). For 6..8 bits the table has no entry
// and alpha_w = max|w| (the grid is then fine enough that clipping gains nothing).
// alpha_w is a buffer; eval mode and export use the stored value (computed once if still 0).
//   w_q = alpha_w * (2 * round(n * (clip(w / alpha_w, -1, 1) + 1) / 2) / n - 1)
// 2^b symmetric levels without zero (2b: +-alpha, +-alpha/3). Backward: dw_q/dw = 1 for
// |w| <= alpha_w, else 0; no gradient to alpha_w. Codes m = round(...) in {0..n}, odd-symmetric
// grid, scale alpha_w. use_max (set by calibration with weights = max) always uses max|w|.
// Registered as "sawb" (weights only).
#pragma once
#include <utility>

#include "quant/quantizer.h"
#include "quant/registry.h"

namespace lowbit {

// (c1, c2) for 2..5 bits; throws for other widths.
std::pair<double, double> sawb_coefficients(int bits);
// alpha_w of a weight tensor (the formula above, with its fallbacks).
float sawb_alpha(const Tensor& w, int bits);

// Factory option "sawb_max": true sets use_max (what factory_options() records for a calibrated one).
class SawbQuantizer : public Quantizer {
 public:
  explicit SawbQuantizer(int bits);
  std::string type_name() const override { return "SawbQuantizer"; }
  std::string describe() const override;
  std::string method() const override { return "sawb"; }
  QuantizedCodes codes(const Tensor& w) const override;
  std::vector<std::pair<std::string, double>> state_scalars() const override;
  nlohmann::json factory_options() const override;  // {"sawb_max": true} when use_max

  Parameter alpha_w;   // buffer [1]
  bool use_max = false;  // alpha_w = max |w| instead of the SAWB formula (calibration --weights max)

 protected:
  Tensor quantize(const Tensor& w) override;
};

// The registration (quant/registry.h): weights only.
QuantizerMethod sawb_method();

// The SAWB grid op with a given alpha (a constant of the graph).
Tensor sawb_quantize(const Tensor& w, float alpha, int bits);

}  // namespace lowbit
