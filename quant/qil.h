// qil.h: QIL quantizers (Jung et al., CVPR 2019, arXiv:1808.05779): a learned interval.
// Weights, parameters c, d (> 0), gamma:  u = (|w| - c + d) / (2d)
//   w_hat = 0 (u <= 0, pruned) | sign(w) (u >= 1, clipped) | sign(w) * u^gamma (inside)
//   w_q   = round(w_hat * q) / q,  q = 2^(b-1) - 1  (symmetric grid WITH zero, 2^b - 1 levels)
//   inside (0 < u < 1), STE through round, zero gradient outside:
//     dw_hat/dw = gamma u^(gamma-1) / (2d);      dw_hat/dc = -sign(w) gamma u^(gamma-1) / (2d)
//     dw_hat/dd = sign(w) gamma u^(gamma-1) (c - |w|) / (2d^2);  dw_hat/dgamma = sign(w) u^gamma ln u
//   (ln u guarded with u >= 1e-12). Codes: round(w_hat * q) + q in {0..2q}, zero point q,
//   scale 1/q.
// Activations, parameters c, d (gamma = 1): u = (x - c + d) / (2d); x_hat = clip(u, 0, 1);
//   x_q = round(x_hat * n) / n, n = 2^b - 1. Inside: dx = 1/(2d), dc = -1/(2d), dd = (c - x)/(2d^2).
//   Codes round(x_hat * n), zero point 0, scale 1/n.
// Outputs are normalised (weights in [-1, 1], activations in [0, 1]); the next BN absorbs the scale.
// The raw gradients above are what .grad holds (golden vectors); the optimizer scales them by
// g = 1/sqrt(N * q) (N = weights of the layer, or input features per sample) through the
// parameter group's grad_scale, and clamps d >= 1e-6 and gamma >= 0.1 after each step
// (make_param_groups): a d that drifts negative collapses the interval.
// Init on the first enabled forward: weights c = d = alpha/2 with alpha the SAWB clip of the
// layer (max|w| beyond 5 bits), gamma 1, so the interval is [0, alpha]; activations c = d = alpha/2
// with alpha the MSE-optimal clip of the first batch.
// Integer rule "qil" (p0 = c, p1 = d > 0): c = round(min(max((x - c + d) * (1 / (2d)), 0), 1) * n);
// affine mul = n / (2d), add = (d - c) * mul.
#pragma once
#include "quant/quantizer.h"
#include "quant/registry.h"

namespace lowbit {

class QilWeightQuantizer : public Quantizer {
 public:
  static constexpr double kMinD = 1e-6, kMinGamma = 0.1;
  explicit QilWeightQuantizer(int bits);
  std::string type_name() const override { return "QilWeightQuantizer"; }
  std::string describe() const override;
  std::string method() const override { return "qil"; }
  QuantizedCodes codes(const Tensor& w) const override;
  std::vector<QuantParamSpec> param_specs() override;
  bool keeps_scale() const override { return false; }  // w_hat in [-1, 1]

  Parameter c, d, gamma;  // [1] each
  Parameter numel;        // buffer [1]: weights in the layer (N of the gradient scale)

 protected:
  Tensor quantize(const Tensor& w) override;
  void initialize(const Tensor& w) override;
};

class QilActQuantizer : public Quantizer {
 public:
  static constexpr double kMinD = 1e-6;
  explicit QilActQuantizer(int bits);
  std::string type_name() const override { return "QilActQuantizer"; }
  std::string describe() const override;
  std::string method() const override { return "qil"; }
  QuantizedCodes codes(const Tensor& x) const override;
  void set_clip(float clip) override;  // c = d = clip / 2: the interval [0, clip]
  std::vector<QuantParamSpec> param_specs() override;
  ActCodeSpec code_spec() const override { return {"qil", bits(), c->data()[0], d->data()[0]}; }

  Parameter c, d;          // [1] each
  Parameter features;      // buffer [1]: input features per sample (N of the gradient scale)

 protected:
  Tensor quantize(const Tensor& x) override;
  void initialize(const Tensor& x) override;
};

// The registration (quant/registry.h): weights and activations, integer rule "qil".
QuantizerMethod qil_method();

// defer (quant/quantizer.h): empty, backward returns dw and dc/dd/dgamma; otherwise it hands its
// output gradient and their function to it (a data-parallel weight replica): the function adds
// dc/dd/dgamma and, for a leaf w, dw (g * slope rounds, so dw must come from the averaged g too).
Tensor qil_weight_quantize(const Tensor& w, const Tensor& c, const Tensor& d, const Tensor& gamma, int bits,
                           const ParamGradientDeferral& defer = {});
Tensor qil_act_quantize(const Tensor& x, const Tensor& c, const Tensor& d, int bits);

}  // namespace lowbit
