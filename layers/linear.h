// linear.h: Linear, a fully connected layer: y = x W^T + b, W [out, in], b [out].
// Init as PyTorch: W, b ~ U(-1/sqrt(in), 1/sqrt(in)), drawn from the Generator the layer is built
// with (weight first, then bias). Its layer-type row writes {"in_features", "out_features", "bias"}.
#pragma once
#include "core/random.h"
#include "layers/layer_config.h"
#include "layers/module.h"

namespace lowbit {

class Linear : public Module {
 public:
  // Random init from `gen`.
  Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias = true);
  // Given values (copied): weight [out, in], bias [out] or undefined (no bias).
  Linear(const Tensor& weight, const Tensor& bias);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  std::string describe() const override;

  const int64_t in_features, out_features;
  Parameter weight, bias;
};

// Weight and bias elements of a Linear of these settings (QuantLinear's row reuses it).
// {"in_features", "out_features", "bias"}: Linear's row and QuantLinear's (quant/quant_layers.h).
nlohmann::json linear_config_json(const Linear& linear);
double linear_parameter_count(const nlohmann::json& config);
LayerType linear_layer_type();

}  // namespace lowbit
