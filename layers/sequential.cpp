// sequential.cpp: Sequential container.
#include "layers/sequential.h"

#include "core/error.h"
#include "layers/activation.h"

namespace lowbit {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (auto& m : modules) add(m);
}

Sequential& Sequential::add(std::shared_ptr<Module> module) {
  slots_.push_back(std::make_unique<std::shared_ptr<Module>>());
  register_module(std::to_string(slots_.size() - 1), *slots_.back(), std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (size_t i = 0; i < slots_.size(); ++i) {
    // A child followed by a plain ReLU runs both in one pass where the child can (forward_relu).
    if (i + 1 < slots_.size() && dynamic_cast<ReLU*>(slots_[i + 1]->get())) {
      y = (*slots_[i])->forward_relu(y);
      ++i;
    } else {
      y = (*slots_[i])->forward(y);
    }
  }
  return y;
}

LayerType sequential_layer_type() {
  return {"Sequential", &typeid(Sequential), [](const Module&) { return nlohmann::json::object(); },
          [](const nlohmann::json&, const NamedModules& children, Generator&) {
            auto seq = std::make_shared<Sequential>();
            for (const auto& [name, child] : children) {
              LOWBIT_CHECK(name == std::to_string(seq->size()), "Sequential child '", name, "' is out of order (expected '",
                           seq->size(), "')");
              seq->add(child);
            }
            return seq;
          }};
}

}  // namespace lowbit
