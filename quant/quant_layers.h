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
#pragma once
#include <memory>

#include "layers/conv2d.h"
#include "layers/linear.h"
#include "quant/quantizer.h"

namespace lowbit {

class QuantConv2d : public Conv2d {
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
  Tensor quantized_weight();  // Qw(W) (W when float), for export and inspection

  std::shared_ptr<Quantizer> weight_quantizer, act_quantizer;
};

class QuantLinear : public Linear {
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
  Tensor quantized_weight();

  std::shared_ptr<Quantizer> weight_quantizer, act_quantizer;
};

// "W2/A2 pact/sawb"-style summary of the two quantizers ("fp32" for a float side).
std::string quant_bits_label(const Quantizer* weight_quantizer, const Quantizer* act_quantizer);

// Layer-type rows (layers/layer_config.h): QuantConv2d writes Conv2d's settings, QuantLinear
// Linear's; the quantizers are their children "weight_quantizer" / "act_quantizer" (absent: float).
LayerType quant_conv2d_layer_type();
LayerType quant_linear_layer_type();

}  // namespace lowbit
