// linear.cpp: Linear layer.
#include "layers/linear.h"

#include <cmath>

#include "core/error.h"
#include "core/ops_matmul.h"
#include "core/random.h"

namespace lowbit {

Linear::Linear(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  LOWBIT_CHECK(in > 0 && out > 0, "Linear: features must be positive, got in=", in, " out=", out);
  const float bound = 1.f / std::sqrt(static_cast<float>(in));
  register_parameter("weight", weight, Tensor::uniform({out, in}, global_generator(), -bound, bound));
  if (with_bias) register_parameter("bias", bias, Tensor::uniform({out}, global_generator(), -bound, bound));
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias.tensor()); }

std::string Linear::describe() const {
  return detail::concat("Linear(", in_features, " -> ", out_features, bias.defined() ? "" : ", no bias", ")");
}

}  // namespace lowbit
