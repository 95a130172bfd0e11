// conv2d.h: Conv2d over NCHW input, weight [out, in/groups, k, k], optional bias [out].
// Init as PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups * k * k.
#pragma once
#include "core/ops_conv.h"
#include "layers/module.h"

namespace lowbit {

struct Conv2dConfig {
  int64_t in_channels = 1, out_channels = 1, kernel = 3;
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = false;
};

class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dConfig& config);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string describe() const override;
  Conv2dOptions options() const { return {config.stride, config.padding, config.dilation, config.groups}; }

  const Conv2dConfig config;
  Parameter weight, bias;
};

}  // namespace lowbit
