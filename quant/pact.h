// pact.h: PACT activation quantizer (Choi et al. 2018, arXiv:1805.06085), one learned alpha per layer.
//   y   = clip(x, 0, alpha);  y_q = round(y * n / alpha) * alpha / n,  n = 2^b - 1, round half-even
//   dy_q/dx     = 1 for 0 <= x < alpha, else 0                  (STE through round)
//   dL/dalpha   = sum over x >= alpha of dL/dy_q                (paper Eq. 3: the scale alpha/n is a
//                 constant in backward; differentiating it too would give LSQ, not PACT)
// Codes: round(y * n / alpha) in {0..n}, zero point 0, scale alpha / n.
// Init (PactInit): fixed value (paper: 10), or from the first enabled batch: the alpha minimising
// the quantization MSE over a grid (default: measured best, see quant/README.md) or the 99th
// percentile of the positive inputs. The optimizer keeps alpha >= 1e-3 and applies L2 on alpha
// with the weights' decay (make_param_groups).
// Integer rule "pact" (p0 = alpha > 0): c = round(min(max(x, 0), alpha) * (n / alpha)); affine
// mul = n / alpha, add = 0. Factory option "pact_init" (parse_pact_init; default mse).
#pragma once
#include "quant/quantizer.h"
#include "quant/registry.h"

namespace lowbit {

enum class PactInit { fixed, mse, percentile99 };
const char* pact_init_name(PactInit init);  // "fixed" | "mse" | "p99"
// A policy's "pact_init": "mse", "p99", "fixed" (alpha 10, the paper's) or a positive number (a
// fixed start at that alpha, e.g. "1" = DoReFa's clip). Throws naming the accepted forms.
struct PactInitSpec {
  PactInit init = PactInit::mse;
  float alpha = 10.f;  // the start of a fixed init
};
PactInitSpec parse_pact_init(const std::string& text);

class PactQuantizer : public Quantizer {
 public:
  static constexpr double kMinAlpha = 1e-3;
  explicit PactQuantizer(int bits, PactInit init = PactInit::mse, float init_alpha = 10.f);
  std::string type_name() const override { return "PactQuantizer"; }
  std::string describe() const override;
  std::string method() const override { return "pact"; }
  QuantizedCodes codes(const Tensor& x) const override;
  void set_clip(float clip) override;
  std::vector<QuantParamSpec> param_specs() override;
  ActCodeSpec code_spec() const override { return {"pact", bits(), alpha->data()[0], 0.f}; }
  nlohmann::json factory_options() const override;  // {"pact_init": "mse" | "p99" | "fixed" | "<alpha>"}

  const PactInit init;
  const float init_alpha;  // the start of a fixed init
  Parameter alpha;  // [1]

 protected:
  Tensor quantize(const Tensor& x) override;
  // pact_quantize's arithmetic for the op that consumes it (QuantConv2d's conv2d); alpha's
  // gradient sums the same terms per image, in that op's order.
  std::optional<FusedActivation> fused_quantize() const override;
  void initialize(const Tensor& x) override;
};

// The registration (quant/registry.h): activations only, integer rule "pact".
QuantizerMethod pact_method();

// The PACT op itself (alpha a [1] tensor), usable without a module.
Tensor pact_quantize(const Tensor& x, const Tensor& alpha, int bits);

}  // namespace lowbit
