// dorefa.h: DoReFa-Net quantizers (Zhou et al. 2016, arXiv:1606.06160), no learned parameters.
// quantize_b(r) = round(n * r) / n on [0, 1], n = 2^b - 1, round half-even.
//  * Weights (b >= 2): t = tanh(w); u = t / (2 * max|t|) + 1/2; w_q = 2 * quantize_b(u) - 1.
//    Levels (2m - n)/n, m = 0..n (no zero level). max|t| is over the whole layer and is a
//    CONSTANT in backward (the paper's choice, and what the golden vectors encode):
//      dw_q/dw = (1 - tanh(w)^2) / max|t|   (STE through round)
//    Codes: m = round(n * u), odd-symmetric grid, scale 1.
//  * Activations: a_q = quantize_b(clip(x, 0, 1)); da_q/dx = 1 for 0 <= x <= 1, else 0.
//    Codes: round(n * clip(x, 0, 1)), zero point 0, scale 1/n.
// Integer rule "dorefa" (no parameters): c = round(n * min(max(x, 0), 1)); affine mul = n, add = 0.
#pragma once
#include "quant/quantizer.h"
#include "quant/registry.h"

namespace lowbit {

class DorefaWeightQuantizer : public Quantizer {
 public:
  explicit DorefaWeightQuantizer(int bits);
  std::string type_name() const override { return "DorefaWeightQuantizer"; }
  std::string describe() const override;
  std::string method() const override { return "dorefa"; }
  QuantizedCodes codes(const Tensor& w) const override;
  bool keeps_scale() const override { return false; }  // levels (2m - n)/n in [-1, 1]

 protected:
  Tensor quantize(const Tensor& w) override;
};

class DorefaActQuantizer : public Quantizer {
 public:
  explicit DorefaActQuantizer(int bits);
  std::string type_name() const override { return "DorefaActQuantizer"; }
  std::string describe() const override;
  std::string method() const override { return "dorefa"; }
  QuantizedCodes codes(const Tensor& x) const override;
  ActCodeSpec code_spec() const override { return {"dorefa", bits(), 0.f, 0.f}; }

 protected:
  Tensor quantize(const Tensor& x) override;
};

// The registration (quant/registry.h): weights and activations, integer rule "dorefa".
QuantizerMethod dorefa_method();

Tensor dorefa_weight_quantize(const Tensor& w, int bits);
Tensor dorefa_act_quantize(const Tensor& x, int bits);

}  // namespace lowbit
