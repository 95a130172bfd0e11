// model_spec.h: ModelSpec, what rebuilds a zoo model: its registry name, input/class
// configuration and quantization policy (fp32: a float model; otherwise converted with
// convert_model). Checkpoints store it so eval/export/resume rebuild the same model.
#pragma once
#include <memory>
#include <string>

#include "core/data/dataset.h"
#include "layers/module.h"
#include "models/registry.h"
#include "quant/policy.h"

namespace lowbit {

struct ModelSpec {
  std::string name;  // registry name; empty for a model the program defines itself
  ModelConfig config;
  QuantPolicy policy;
};

// make_model(spec.name, spec.config), converted to spec.policy when quantized.
std::shared_ptr<Module> build_model(const ModelSpec& spec);
// A float zoo model shaped for the dataset's images and classes.
ModelSpec model_spec_for(const std::string& name, const Dataset& data);

}  // namespace lowbit
