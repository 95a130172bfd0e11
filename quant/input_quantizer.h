// input_quantizer.h: the quantizer of the FIRST layer's input. The normalised image is signed, so
// an unsigned activation quantizer (PACT, DoReFa...) would zero every negative pixel. This one is
// symmetric and signed:
//   S = max_abs / q,  q = 2^(b-1) - 1;   y = round(clip(x / S, -q, q)) * S     (default b = 8)
//   dy/dx = 1 for |x / S| < q, else 0 (the image usually needs no gradient anyway).
// max_abs is a buffer: the running max of |x| over training batches (the first enabled batch
// initialises it; eval uses the stored value). Codes round(x / S) + q in {0..2q}, zero point q,
// scale S.
// Integer rule "input" (p0 = S > 0, bits >= 2): c = round(min(max(x / S, -q), q)) + q, zero point q;
// not affine-fusable (it quantizes the float image, never a GEMM output).
// Under DataParallel the running max is taken over the GLOBAL batch (attach_replicas),
// so every rank uses the scale one process would.
#pragma once
#include "quant/quantizer.h"
#include "quant/registry.h"

namespace lowbit {

class SignedInputQuantizer : public Quantizer {
 public:
  explicit SignedInputQuantizer(int bits = 8);
  std::string type_name() const override { return "SignedInputQuantizer"; }
  std::string describe() const override;
  std::string method() const override { return "input"; }
  QuantizedCodes codes(const Tensor& x) const override;
  void set_clip(float clip) override;  // max_abs = clip
  std::vector<std::pair<std::string, double>> state_scalars() const override;
  ActCodeSpec code_spec() const override { return {"input", bits(), scale->data()[0], 0.f}; }
  void attach_replicas(const Replicas* replicas) override;

  Parameter max_abs;  // buffer [1]
  Parameter scale;    // buffer [1]: max_abs / q, the step the op uses

 protected:
  Tensor quantize(const Tensor& x) override;
  void initialize(const Tensor& x) override;
};

// The registration (quant/registry.h): activations (the first layer's input) only, rule "input".
QuantizerMethod input_method();

}  // namespace lowbit
