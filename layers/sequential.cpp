// sequential.cpp: Sequential container.
#include "layers/sequential.h"

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
  for (auto& slot : slots_) y = (*slot)->forward(y);
  return y;
}

}  // namespace lowbit
