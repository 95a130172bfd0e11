// conv2d.cpp: Conv2d layer and its layer-type row.
#include "layers/conv2d.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lowbit {

namespace {
void check_config(const Conv2dConfig& c) {
  LOWBIT_CHECK(c.in_channels > 0 && c.out_channels > 0 && c.kernel > 0 && c.stride > 0 && c.padding >= 0 &&
                   c.dilation > 0 && c.groups > 0 && c.in_channels % c.groups == 0 && c.out_channels % c.groups == 0,
               "Conv2d: invalid configuration in=", c.in_channels, " out=", c.out_channels, " kernel=", c.kernel,
               " stride=", c.stride, " padding=", c.padding, " dilation=", c.dilation, " groups=", c.groups,
               " (expected positive sizes, padding >= 0, channels divisible by groups)");
}
Shape weight_shape(const Conv2dConfig& c) { return {c.out_channels, c.in_channels / c.groups, c.kernel, c.kernel}; }
}  // namespace

Conv2d::Conv2d(const Conv2dConfig& c, Generator& gen) : config(c) {
  check_config(c);
  const int64_t fan_in = c.in_channels / c.groups * c.kernel * c.kernel;
  const float bound = 1.f / std::sqrt(static_cast<float>(fan_in));
  register_parameter("weight", weight, Tensor::uniform(weight_shape(c), gen, -bound, bound));
  if (c.bias) register_parameter("bias", bias, Tensor::uniform({c.out_channels}, gen, -bound, bound));
}

Conv2d::Conv2d(const Conv2dConfig& c, const Tensor& w, const Tensor& b) : config(c) {
  check_config(c);
  LOWBIT_CHECK(w.defined() && w.shape() == weight_shape(c), "Conv2d: weight of shape ",
               w.defined() ? to_string(w.shape()) : std::string("(undefined)"), ", expected ", to_string(weight_shape(c)));
  LOWBIT_CHECK(b.defined() == c.bias && (!b.defined() || b.shape() == Shape{c.out_channels}), "Conv2d: bias ",
               b.defined() ? to_string(b.shape()) : std::string("(undefined)"), ", expected ",
               c.bias ? to_string(Shape{c.out_channels}) : std::string("none"));
  register_parameter("weight", weight, w.clone());
  if (c.bias) register_parameter("bias", bias, b.clone());
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias.tensor(), options()); }

std::string Conv2d::describe() const {
  return detail::concat("Conv2d(", config.in_channels, " -> ", config.out_channels, ", ", config.kernel, "x",
                        config.kernel, ", stride ", config.stride, ", pad ", config.padding,
                        config.groups > 1 ? detail::concat(", groups ", config.groups) : "",
                        config.bias ? ", bias" : "", ")");
}

nlohmann::json conv2d_config_json(const Conv2dConfig& c) {
  return {{"in_channels", c.in_channels}, {"out_channels", c.out_channels}, {"kernel", c.kernel},
          {"stride", c.stride},           {"padding", c.padding},           {"dilation", c.dilation},
          {"groups", c.groups},           {"bias", c.bias}};
}

Conv2dConfig conv2d_config_from_json(const nlohmann::json& j) {
  Conv2dConfig c;
  c.in_channels = config_int(j, "in_channels");
  c.out_channels = config_int(j, "out_channels");
  c.kernel = config_int(j, "kernel");
  c.stride = config_int(j, "stride");
  c.padding = config_int(j, "padding");
  c.dilation = config_int(j, "dilation");
  c.groups = config_int(j, "groups");
  c.bias = config_bool(j, "bias");
  check_config(c);
  return c;
}

double conv2d_parameter_count(const nlohmann::json& j) {
  const double in = static_cast<double>(config_int(j, "in_channels")), out = static_cast<double>(config_int(j, "out_channels")),
               k = static_cast<double>(config_int(j, "kernel")), groups = static_cast<double>(std::max<int64_t>(1, config_int(j, "groups")));
  return out * (in / groups) * k * k + (config_bool(j, "bias") ? out : 0);
}

LayerType conv2d_layer_type() {
  LayerType row{"Conv2d", &typeid(Conv2d),
                [](const Module& m) { return conv2d_config_json(static_cast<const Conv2d&>(m).config); },
                [](const nlohmann::json& c, const NamedModules&, Generator& gen) {
                  return std::make_shared<Conv2d>(conv2d_config_from_json(c), gen);
                },
                {}, conv2d_parameter_count};
  return row;
}

}  // namespace lowbit
