// linear.cpp: Linear layer and its layer-type row.
#include "layers/linear.h"

#include <cmath>

#include "core/error.h"
#include "core/ops_matmul.h"

namespace lowbit {

Linear::Linear(int64_t in, int64_t out, Generator& gen, bool with_bias) : in_features(in), out_features(out) {
  LOWBIT_CHECK(in > 0 && out > 0, "Linear: features must be positive, got in=", in, " out=", out);
  const float bound = 1.f / std::sqrt(static_cast<float>(in));
  register_parameter("weight", weight, Tensor::uniform({out, in}, gen, -bound, bound));
  if (with_bias) register_parameter("bias", bias, Tensor::uniform({out}, gen, -bound, bound));
}

Linear::Linear(const Tensor& w, const Tensor& b)
    : in_features(w.defined() && w.dim() == 2 ? w.size(1) : 0), out_features(w.defined() && w.dim() == 2 ? w.size(0) : 0) {
  LOWBIT_CHECK(in_features > 0 && out_features > 0, "Linear: weight must be [out, in] with positive sizes, got ",
               w.defined() ? to_string(w.shape()) : std::string("(undefined)"));
  LOWBIT_CHECK(!b.defined() || b.shape() == Shape{out_features}, "Linear: bias of shape ", to_string(b.shape()),
               ", expected [", out_features, "]");
  register_parameter("weight", weight, w.clone());
  if (b.defined()) register_parameter("bias", bias, b.clone());
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias.tensor()); }

std::string Linear::describe() const {
  return detail::concat("Linear(", in_features, " -> ", out_features, bias.defined() ? "" : ", no bias", ")");
}

nlohmann::json linear_config_json(const Linear& l) {
  return nlohmann::json{{"in_features", l.in_features}, {"out_features", l.out_features}, {"bias", l.bias.defined()}};
}

double linear_parameter_count(const nlohmann::json& c) {
  const double in = static_cast<double>(config_int(c, "in_features")), out = static_cast<double>(config_int(c, "out_features"));
  return out * in + (config_bool(c, "bias") ? out : 0);
}

LayerType linear_layer_type() {
  return {"Linear", &typeid(Linear),
          [](const Module& m) { return linear_config_json(static_cast<const Linear&>(m)); },
          [](const nlohmann::json& c, const NamedModules&, Generator& gen) {
            return std::make_shared<Linear>(config_int(c, "in_features"), config_int(c, "out_features"), gen,
                                            config_bool(c, "bias"));
          },
          nullptr, linear_parameter_count};
}

}  // namespace lowbit
