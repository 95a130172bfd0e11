// quant_layers.cpp: QuantConv2d / QuantLinear.
#include "quant/quant_layers.h"

#include "core/error.h"
#include "core/ops_matmul.h"
#include "core/random.h"

namespace lowbit {

namespace {
// Runs make() without consuming the global generator (the float layer's constructor draws a
// random init that the copied weights overwrite anyway).
template <class F>
auto keep_rng(F make) {
  const auto state = global_generator().state();
  auto m = make();
  global_generator().set_state(state);
  return m;
}

std::string side(const Quantizer* q) {
  return q ? detail::concat(q->bits(), "b ", q->method()) : std::string("fp32");
}
}  // namespace

std::string quant_bits_label(const Quantizer* wq, const Quantizer* aq) {
  return "W: " + side(wq) + ", A: " + side(aq);
}

QuantConv2d::QuantConv2d(const Conv2dConfig& config, std::shared_ptr<Quantizer> wq, std::shared_ptr<Quantizer> aq)
    : Conv2d(config) {
  register_module("weight_quantizer", weight_quantizer, std::move(wq));
  register_module("act_quantizer", act_quantizer, std::move(aq));
}

std::shared_ptr<QuantConv2d> QuantConv2d::from(const Conv2d& conv, std::shared_ptr<Quantizer> wq,
                                               std::shared_ptr<Quantizer> aq) {
  auto q = keep_rng([&] { return std::make_shared<QuantConv2d>(conv.config, std::move(wq), std::move(aq)); });
  q->weight = conv.weight.tensor();
  if (conv.bias.defined()) q->bias = conv.bias.tensor();
  q->train(conv.is_training());
  return q;
}

Tensor QuantConv2d::quantized_weight() { return weight_quantizer ? weight_quantizer->forward(weight) : weight.tensor(); }

Tensor QuantConv2d::forward(const Tensor& x) {
  const Tensor xin = act_quantizer ? act_quantizer->forward(x) : x;
  return conv2d(xin, quantized_weight(), bias.tensor(), options());
}

std::string QuantConv2d::describe() const {
  return Conv2d::describe().replace(0, 6, "QuantConv2d") + " [" +
         quant_bits_label(weight_quantizer.get(), act_quantizer.get()) + "]";
}

QuantLinear::QuantLinear(int64_t in, int64_t out, bool with_bias, std::shared_ptr<Quantizer> wq,
                         std::shared_ptr<Quantizer> aq)
    : Linear(in, out, with_bias) {
  register_module("weight_quantizer", weight_quantizer, std::move(wq));
  register_module("act_quantizer", act_quantizer, std::move(aq));
}

std::shared_ptr<QuantLinear> QuantLinear::from(const Linear& lin, std::shared_ptr<Quantizer> wq,
                                               std::shared_ptr<Quantizer> aq) {
  auto q = keep_rng([&] {
    return std::make_shared<QuantLinear>(lin.in_features, lin.out_features, lin.bias.defined(), std::move(wq),
                                         std::move(aq));
  });
  q->weight = lin.weight.tensor();
  if (lin.bias.defined()) q->bias = lin.bias.tensor();
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

}  // namespace lowbit
