// model_spec.cpp: building a zoo model from its spec.
#include "models/model_spec.h"

namespace lowbit {

std::shared_ptr<Module> build_model(const ModelSpec& spec) {
  std::shared_ptr<Module> model = make_model(spec.name, spec.config);
  if (spec.policy.quantized()) convert_model(*model, spec.policy);
  return model;
}

ModelSpec model_spec_for(const std::string& name, const Dataset& data) {
  return {name, {data.channels, data.height, data.width, data.num_classes()}, QuantPolicy{}};
}

}  // namespace lowbit
