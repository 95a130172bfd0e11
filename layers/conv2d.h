// conv2d.h: Conv2d over NCHW input, weight [out, in/groups, k, k], optional bias [out].
// Init as PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups * k * k, drawn from the
// Generator the layer is built with (weight first, then bias). Its layer-type row (layers/
// layer_config.h) writes the Conv2dConfig fields.
#pragma once
#include "core/ops_conv.h"
#include "core/random.h"
#include "layers/layer_config.h"
#include "layers/module.h"

namespace lowbit {

struct Conv2dConfig {
  int64_t in_channels = 1, out_channels = 1, kernel = 3;
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = false;
};

class Conv2d : public Module {
 public:
  // Random init from `gen`.
  Conv2d(const Conv2dConfig& config, Generator& gen);
  // Given values (copied): weight [out, in/groups, k, k], bias [out] (undefined when !config.bias).
  Conv2d(const Conv2dConfig& config, const Tensor& weight, const Tensor& bias);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string describe() const override;
  Conv2dOptions options() const { return {config.stride, config.padding, config.dilation, config.groups}; }

  const Conv2dConfig config;
  Parameter weight, bias;
};

// Conv2dConfig <-> {"in_channels", "out_channels", "kernel", "stride", "padding", "dilation", "groups", "bias"}
// (QuantConv2d's row reuses them).
nlohmann::json conv2d_config_json(const Conv2dConfig& config);
Conv2dConfig conv2d_config_from_json(const nlohmann::json& config);
// Weight and bias elements of a Conv2d of these settings (QuantConv2d's row reuses it).
double conv2d_parameter_count(const nlohmann::json& config);
LayerType conv2d_layer_type();

}  // namespace lowbit
