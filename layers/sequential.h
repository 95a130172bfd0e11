// sequential.h: Sequential, a chain of modules named "0", "1", ... applied in order. Its
// layer-type row has no settings: its architecture is its children's.
#pragma once
#include <initializer_list>

#include "layers/layer_config.h"
#include "layers/module.h"

namespace lowbit {

class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  Sequential& add(std::shared_ptr<Module> module);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
  size_t size() const { return slots_.size(); }
  std::shared_ptr<Module> at(size_t i) const { return *slots_.at(i); }

 private:
  // Stable addresses: the registry keeps pointers to these slots.
  std::vector<std::unique_ptr<std::shared_ptr<Module>>> slots_;
};

LayerType sequential_layer_type();

}  // namespace lowbit
