// conv2d.cpp: Conv2d layer.
#include "layers/conv2d.h"

#include <cmath>

#include "core/error.h"
#include "core/random.h"

namespace lowbit {

Conv2d::Conv2d(const Conv2dConfig& c) : config(c) {
  LOWBIT_CHECK(c.in_channels > 0 && c.out_channels > 0 && c.kernel > 0 && c.groups > 0 &&
                   c.in_channels % c.groups == 0 && c.out_channels % c.groups == 0,
               "Conv2d: invalid configuration in=", c.in_channels, " out=", c.out_channels, " kernel=", c.kernel,
               " groups=", c.groups);
  const int64_t fan_in = c.in_channels / c.groups * c.kernel * c.kernel;
  const float bound = 1.f / std::sqrt(static_cast<float>(fan_in));
  register_parameter("weight", weight,
                     Tensor::uniform({c.out_channels, c.in_channels / c.groups, c.kernel, c.kernel},
                                     global_generator(), -bound, bound));
  if (c.bias) register_parameter("bias", bias, Tensor::uniform({c.out_channels}, global_generator(), -bound, bound));
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias.tensor(), options()); }

std::string Conv2d::describe() const {
  return detail::concat("Conv2d(", config.in_channels, " -> ", config.out_channels, ", ", config.kernel, "x",
                        config.kernel, ", stride ", config.stride, ", pad ", config.padding,
                        config.groups > 1 ? detail::concat(", groups ", config.groups) : "",
                        config.bias ? ", bias" : "", ")");
}

}  // namespace lowbit
