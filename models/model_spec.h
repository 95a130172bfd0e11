// model_spec.h: ModelSpec, what rebuilds a model: a zoo model by its registry name, input/class
// configuration and quantization policy (fp32: a float model; otherwise converted with
// convert_model), or any model built from library layers by its architecture (the layer-type
// configs of layers/layer_config.h, table quant/layer_types.h library_layer_types()). Checkpoints
// store it so eval/export/calibrate/resume rebuild the same model, and exported files carry it as
// provenance so bench infer can rebuild the float model.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/data/dataset.h"
#include "core/random.h"
#include "layers/module.h"
#include "models/registry.h"
#include "quant/policy.h"

namespace lowbit {

struct ModelSpec {
  std::string name;  // registry name; empty for a model the program defines itself
  ModelConfig config;
  QuantPolicy policy;
  // module_config(model, library_layer_types()): what rebuilds a program-defined model (and,
  // redundantly, a zoo one). null: unknown (a checkpoint written before architectures were stored).
  nlohmann::json architecture;
};

// The architecture of `model` over every library layer type, its quantizers' methods from
// `registry` (a program's own methods are written too; rebuilding them needs its registry).
nlohmann::json model_architecture(const Module& model,
                                  const QuantizerRegistry& registry = QuantizerRegistry::builtin());
// A zoo model: make_model(spec.name, spec.config, gen), converted to spec.policy when quantized.
// A program-defined one (no name): rebuilt from spec.architecture, its quantizers by the policy's
// registry (spec.policy.methods(), set by Checkpoint::load). Initialisation drawn from
// `gen` (irrelevant when weights are loaded next). Throws lowbit::Error when neither is known, or
// naming the first layer whose type has no registered config.
std::shared_ptr<Module> build_model(const ModelSpec& spec, Generator& gen);
// Whether the model is quantized: the policy says so, or (a program-defined model) its
// architecture holds a quantizer.
bool is_quantized(const ModelSpec& spec);
// The policy's method; for a program-defined model the policy method of the policy's registry whose
// weight and activation methods its architecture's quantizers use ("pact-sawb"), else those
// methods joined ("<activation>+<weight>"); "" when float.
std::string quant_method(const ModelSpec& spec);
// A float zoo model shaped for the dataset's images and classes.
ModelSpec model_spec_for(const std::string& name, const Dataset& data);

}  // namespace lowbit
