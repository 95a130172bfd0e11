// activation.cpp: parameter-free layers.
#include "layers/activation.h"

#include "core/error.h"
#include "core/ops_dropout.h"
#include "core/ops_elementwise.h"
#include "core/ops_pool.h"

namespace lowbit {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Dropout::Dropout(float p, Generator& gen) : p(p), rng_(gen.next_u64()) {
  LOWBIT_CHECK(p >= 0.f && p < 1.f, "Dropout: p must be in [0, 1), got ", p);
  register_generator("rng", rng_);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, is_training(), rng_); }
std::string Dropout::describe() const { return detail::concat("Dropout(", p, ")"); }

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel, stride, padding); }
std::string MaxPool2d::describe() const { return detail::concat("MaxPool2d(", kernel, ", stride ", stride, ")"); }

Tensor AvgPool2d::forward(const Tensor& x) { return avg_pool2d(x, kernel, stride, padding); }
std::string AvgPool2d::describe() const { return detail::concat("AvgPool2d(", kernel, ", stride ", stride, ")"); }

Tensor GlobalAvgPool2d::forward(const Tensor& x) { return global_avg_pool2d(x); }

using json = nlohmann::json;

LayerType relu_layer_type() { return plain_layer_type<ReLU>("ReLU"); }
LayerType identity_layer_type() { return plain_layer_type<Identity>("Identity"); }
LayerType flatten_layer_type() { return plain_layer_type<Flatten>("Flatten"); }
LayerType global_avg_pool2d_layer_type() { return plain_layer_type<GlobalAvgPool2d>("GlobalAvgPool2d"); }

LayerType dropout_layer_type() {
  return {"Dropout", &typeid(Dropout), [](const Module& m) { return json{{"p", static_cast<const Dropout&>(m).p}}; },
          [](const json& c, const NamedModules&, Generator& gen) {
            return std::make_shared<Dropout>(static_cast<float>(config_number(c, "p")), gen);
          }};
}

namespace {
template <class Pool>
LayerType pool_layer_type(const char* name) {
  return {name, &typeid(Pool),
          [](const Module& m) {
            const auto& p = static_cast<const Pool&>(m);
            return json{{"kernel", p.kernel}, {"stride", p.stride}, {"padding", p.padding}};
          },
          [](const json& c, const NamedModules&, Generator&) {
            const int64_t kernel = config_int(c, "kernel"), stride = config_int(c, "stride"),
                          padding = config_int(c, "padding");
            LOWBIT_CHECK(kernel > 0 && stride > 0 && padding >= 0 && 2 * padding <= kernel, "pool kernel ", kernel,
                         ", stride ", stride, ", padding ", padding, ": expected kernel, stride > 0 and 0 <= padding <= kernel / 2");
            return std::make_shared<Pool>(kernel, stride, padding);
          }};
}
}  // namespace

LayerType max_pool2d_layer_type() { return pool_layer_type<MaxPool2d>("MaxPool2d"); }
LayerType avg_pool2d_layer_type() { return pool_layer_type<AvgPool2d>("AvgPool2d"); }

}  // namespace lowbit
