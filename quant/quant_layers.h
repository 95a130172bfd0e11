// quant_layers.h: QuantConv2d and QuantLinear, a float layer + its weight quantizer + the
// activation quantizer that feeds it:
//   y = conv2d(Qa(x), Qw(W)) + b        y = Qa(x) Qw(W)^T + b
// Qa quantizes the layer's INPUT (for a conv after BN+ReLU that is PACT's clip of the ReLU
// output: relu then clip(., 0, alpha) equals clip(., 0, alpha)). Either quantizer may be null
// (that side stays float). They are child modules named "weight_quantizer" and "act_quantizer",
// so their parameters appear as e.g. "4.0.conv1.act_quantizer.alpha". The classes subclass
// Conv2d / Linear and so fit every typed slot (BasicBlock's shared_ptr<Conv2d>).
// The bias (if any) stays float; in the integer runtime it joins the requantization.
// Their layer-type rows (quant/layer_types.h) write the float layer's settings; the quantizers are
// children, each written by the Quantizer row.
// Both implement QuantLayer, what the policy, export and the parity checks need of a quantized
// layer, so they cast once to it instead of to each class.
#pragma once
#include <memory>

#include "layers/conv2d.h"
#include "layers/linear.h"
#include "quant/quantizer.h"

namespace lowbit {

// The geometry export needs: a linear layer is a 1x1 "conv" over features.
struct QuantLayerGeometry {
  bool linear = true;
  int64_t kernel = 1, stride = 1, padding = 0, dilation = 1, groups = 1;
};

// A quantized layer: its two quantizers (either may be null: that side stays float), their bits
// (32 for a float side), the fake-quantized weight Qw(W), the float weight/bias and its geometry.
class QuantLayer {
 public:
  std::shared_ptr<Quantizer> weight_quantizer, act_quantizer;

  int weight_bits() const { return weight_quantizer ? weight_quantizer->bits() : 32; }
  int act_bits() const { return act_quantizer ? act_quantizer->bits() : 32; }
  virtual Tensor quantized_weight() = 0;  // Qw(W) (W when float), for export and inspection
  virtual const Tensor& float_weight() const = 0;
  virtual const Tensor& float_bias() const = 0;  // undefined when the layer has none
  virtual QuantLayerGeometry geometry() const = 0;

 protected:
  ~QuantLayer() = default;
};

class QuantConv2d : public Conv2d, public QuantLayer {
 public:
  // Random init of the float weights from `gen` (as Conv2d).
  QuantConv2d(const Conv2dConfig& config, std::shared_ptr<Quantizer> weight_quantizer,
              std::shared_ptr<Quantizer> act_quantizer, Generator& gen);
  // Given float weight and bias (copied; bias undefined when !config.bias).
  QuantConv2d(const Conv2dConfig& config, const Tensor& weight, const Tensor& bias,
              std::shared_ptr<Quantizer> weight_quantizer, std::shared_ptr<Quantizer> act_quantizer);
  // Same configuration as `conv`, its weight and bias copied (nothing random is drawn).
  static std::shared_ptr<QuantConv2d> from(const Conv2d& conv, std::shared_ptr<Quantizer> weight_quantizer,
                                           std::shared_ptr<Quantizer> act_quantizer);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "QuantConv2d"; }
  std::string describe() const override;
  Tensor quantized_weight() override;
  const Tensor& float_weight() const override { return weight.tensor(); }
  const Tensor& float_bias() const override { return bias.tensor(); }
  QuantLayerGeometry geometry() const override {
    return {false, config.kernel, config.stride, config.padding, config.dilation, config.groups};
  }
};

class QuantLinear : public Linear, public QuantLayer {
 public:
  QuantLinear(int64_t in_features, int64_t out_features, bool bias, std::shared_ptr<Quantizer> weight_quantizer,
              std::shared_ptr<Quantizer> act_quantizer, Generator& gen);
  // Given float weight [out, in] and bias [out] or undefined (copied).
  QuantLinear(const Tensor& weight, const Tensor& bias, std::shared_ptr<Quantizer> weight_quantizer,
              std::shared_ptr<Quantizer> act_quantizer);
  static std::shared_ptr<QuantLinear> from(const Linear& linear, std::shared_ptr<Quantizer> weight_quantizer,
                                           std::shared_ptr<Quantizer> act_quantizer);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "QuantLinear"; }
  std::string describe() const override;
  Tensor quantized_weight() override;
  const Tensor& float_weight() const override { return weight.tensor(); }
  const Tensor& float_bias() const override { return bias.tensor(); }
  QuantLayerGeometry geometry() const override { return {}; }
};

// "W2/A2 pact/sawb"-style summary of the two quantizers ("fp32" for a float side).
std::string quant_bits_label(const Quantizer* weight_quantizer, const Quantizer* act_quantizer);

// Layer-type rows (layers/layer_config.h): QuantConv2d writes Conv2d's settings, QuantLinear
// Linear's; the quantizers are their children "weight_quantizer" / "act_quantizer" (absent: float).
LayerType quant_conv2d_layer_type();
LayerType quant_linear_layer_type();

}  // namespace lowbit
