// linear.h: Linear, a fully connected layer: y = x W^T + b, W [out, in], b [out].
// Init as PyTorch: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) from the global generator.
#pragma once
#include "layers/module.h"

namespace lowbit {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  std::string describe() const override;

  const int64_t in_features, out_features;
  Parameter weight, bias;
};

}  // namespace lowbit
