// lsq.h: LSQ quantizers (Esser et al., ICLR 2020): a learned step size s per layer.
//   v_bar = round(clip(v / s, -Q_N, Q_P));  v_q = v_bar * s
//   activations Q_N = 0, Q_P = 2^b - 1;  weights Q_N = 2^(b-1), Q_P = 2^(b-1) - 1
//   dv_q/dv = 1 for -Q_N < v/s < Q_P, else 0
//   dv_q/ds = (round(v/s) - v/s) inside, -Q_N below, Q_P above, times g = 1/sqrt(N * Q_P)
//   (N = weights in the layer, or features per sample = numel / batch). The scale g is INSIDE the
//   raw gradient (the golden vectors include it), unlike QIL.
// Init on the first enabled forward: s = 2 * mean(|v|) / sqrt(Q_P) (current weights, or the
// first batch). The optimizer clamps s >= 1e-5 after each step (a negative step size is a known
// failure at 2 bits). Codes: v_bar + Q_N in {0..2^b - 1}, zero point Q_N, scale s.
// Integer rule "lsq" (activations, p0 = s > 0): c = round(min(max(x / s, 0), n)); affine mul = 1/s.
#pragma once
#include "quant/quantizer.h"
#include "quant/registry.h"

namespace lowbit {

class LsqQuantizer : public Quantizer {
 public:
  static constexpr double kMinStep = 1e-5;
  LsqQuantizer(int bits, QuantTarget target);
  std::string type_name() const override { return target() == QuantTarget::weight ? "LsqWeightQuantizer" : "LsqActQuantizer"; }
  std::string describe() const override;
  std::string method() const override { return "lsq"; }
  QuantizedCodes codes(const Tensor& v) const override;
  void set_clip(float clip) override;  // activations: s = clip / Q_P
  std::vector<QuantParamSpec> param_specs() override;
  ActCodeSpec code_spec() const override;  // activations only
  int qn() const;
  int qp() const;

  Parameter s;  // [1]

 protected:
  Tensor quantize(const Tensor& v) override;
  void initialize(const Tensor& v) override;
};

// The registration (quant/registry.h): weights and activations, integer rule "lsq".
QuantizerMethod lsq_method();

// grad_scale_n: N of g = 1/sqrt(N * Q_P). defer (quant/quantizer.h): empty, backward returns ds
// into s's .grad; otherwise backward hands its output gradient and the ds function to it (a weight
// quantizer running as a data-parallel replica) and returns no gradient for s.
Tensor lsq_quantize(const Tensor& v, const Tensor& s, int qn, int qp, double grad_scale_n,
                    const ParamGradientDeferral& defer = {});

}  // namespace lowbit
