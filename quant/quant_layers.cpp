// quant_layers.cpp: QuantConv2d / QuantLinear.
#include "quant/quant_layers.h"

#include "core/error.h"
#include "core/ops_matmul.h"

namespace lowbit {

namespace {
std::string side(const Quantizer* q) {
  return q ? detail::concat(q->bits(), "b ", q->method()) : std::string("fp32");
}
}  // namespace

std::string quant_bits_label(const Quantizer* wq, const Quantizer* aq) {
  return "W: " + side(wq) + ", A: " + side(aq);
}

QuantConv2d::QuantConv2d(const Conv2dConfig& config, std::shared_ptr<Quantizer> wq, std::shared_ptr<Quantizer> aq,
                         Generator& gen)
    : Conv2d(config, gen) {
  register_module("weight_quantizer", weight_quantizer, std::move(wq));
  register_module("act_quantizer", act_quantizer, std::move(aq));
}

QuantConv2d::QuantConv2d(const Conv2dConfig& config, const Tensor& w, const Tensor& b, std::shared_ptr<Quantizer> wq,
                         std::shared_ptr<Quantizer> aq)
    : Conv2d(config, w, b) {
  register_module("weight_quantizer", weight_quantizer, std::move(wq));
  register_module("act_quantizer", act_quantizer, std::move(aq));
}

std::shared_ptr<QuantConv2d> QuantConv2d::from(const Conv2d& conv, std::shared_ptr<Quantizer> wq,
                                               std::shared_ptr<Quantizer> aq) {
  auto q = std::make_shared<QuantConv2d>(conv.config, conv.weight.tensor(), conv.bias.tensor(), std::move(wq),
                                         std::move(aq));
  q->train(conv.is_training());
  return q;
}

Tensor QuantConv2d::quantized_weight() { return weight_quantizer ? weight_quantizer->forward(weight) : weight.tensor(); }

Tensor QuantConv2d::forward(const Tensor& x) {
  // The activation quantizer inside the convolution's own passes where it can (conv2d's input
  // activation), else as its own op.
  if (act_quantizer)
    if (const auto act = act_quantizer->fused_activation())
      return conv2d(x, quantized_weight(), bias.tensor(), options(), *act);
  const Tensor xin = act_quantizer ? act_quantizer->forward(x) : x;
  return conv2d(xin, quantized_weight(), bias.tensor(), options());
}

std::string QuantConv2d::describe() const {
  return Conv2d::describe().replace(0, 6, "QuantConv2d") + " [" +
         quant_bits_label(weight_quantizer.get(), act_quantizer.get()) + "]";
}

QuantLinear::QuantLinear(int64_t in, int64_t out, bool with_bias, std::shared_ptr<Quantizer> wq,
                         std::shared_ptr<Quantizer> aq, Generator& gen)
    : Linear(in, out, gen, with_bias) {
  register_module("weight_quantizer", weight_quantizer, std::move(wq));
  register_module("act_quantizer", act_quantizer, std::move(aq));
}

QuantLinear::QuantLinear(const Tensor& w, const Tensor& b, std::shared_ptr<Quantizer> wq, std::shared_ptr<Quantizer> aq)
    : Linear(w, b) {
  register_module("weight_quantizer", weight_quantizer, std::move(wq));
  register_module("act_quantizer", act_quantizer, std::move(aq));
}

std::shared_ptr<QuantLinear> QuantLinear::from(const Linear& lin, std::shared_ptr<Quantizer> wq,
                                               std::shared_ptr<Quantizer> aq) {
  auto q = std::make_shared<QuantLinear>(lin.weight.tensor(), lin.bias.tensor(), std::move(wq), std::move(aq));
  q->train(lin.is_training());
  return q;
}

Tensor QuantLinear::quantized_weight() { return weight_quantizer ? weight_quantizer->forward(weight) : weight.tensor(); }

Tensor QuantLinear::forward(const Tensor& x) {
  const Tensor xin = act_quantizer ? act_quantizer->forward(x) : x;
  return linear(xin, quantized_weight(), bias.tensor());
}

std::string QuantLinear::describe() const {
  return Linear::describe().replace(0, 6, "QuantLinear") + " [" +
         quant_bits_label(weight_quantizer.get(), act_quantizer.get()) + "]";
}

namespace {
// The child `name` as a Quantizer (null when absent); throws when it is another kind of module.
std::shared_ptr<Quantizer> quantizer_child(const NamedModules& children, const char* name) {
  std::shared_ptr<Module> m = find_child(children, name);
  auto q = std::dynamic_pointer_cast<Quantizer>(m);
  LOWBIT_CHECK(!m || q, "child '", name, "' has type ", m ? m->type_name() : "", ", expected a quantizer");
  return q;
}
}  // namespace

LayerType quant_conv2d_layer_type() {
  return {"QuantConv2d", &typeid(QuantConv2d),
          [](const Module& m) { return conv2d_config_json(static_cast<const QuantConv2d&>(m).config); },
          [](const nlohmann::json& c, const NamedModules& children, Generator& gen) {
            return std::make_shared<QuantConv2d>(conv2d_config_from_json(c), quantizer_child(children, "weight_quantizer"),
                                                 quantizer_child(children, "act_quantizer"), gen);
          },
          nullptr, conv2d_parameter_count};
}

LayerType quant_linear_layer_type() {
  return {"QuantLinear", &typeid(QuantLinear),
          [](const Module& m) { return linear_config_json(static_cast<const QuantLinear&>(m)); },
          [](const nlohmann::json& c, const NamedModules& children, Generator& gen) {
            return std::make_shared<QuantLinear>(config_int(c, "in_features"), config_int(c, "out_features"),
                                                 config_bool(c, "bias"), quantizer_child(children, "weight_quantizer"),
                                                 quantizer_child(children, "act_quantizer"), gen);
          },
          nullptr, linear_parameter_count};
}

}  // namespace lowbit
