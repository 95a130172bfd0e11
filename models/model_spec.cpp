// model_spec.cpp: building a model from its spec (zoo name or architecture).
#include "models/model_spec.h"

#include <set>

#include "core/error.h"
#include "layers/layer_config.h"
#include "quant/layer_types.h"

namespace lowbit {

nlohmann::json model_architecture(const Module& model, const QuantizerRegistry& registry) {
  return module_config(model, library_layer_types(registry));
}

std::shared_ptr<Module> build_model(const ModelSpec& spec, Generator& gen) {
  if (spec.name.empty()) {
    LOWBIT_CHECK(spec.architecture.is_object(), "the model has neither a zoo name nor an architecture (a model its "
                 "program defined, saved without one): only that program can rebuild it");
    return module_from_config(spec.architecture, library_layer_types(spec.policy.methods()), gen);
  }
  std::shared_ptr<Module> model = make_model(spec.name, spec.config, gen);
  if (spec.policy.quantized()) convert_model(*model, spec.policy);
  return model;
}

namespace {
// The methods of the architecture's quantizers, by target (std::set: sorted, unique).
void collect_methods(const nlohmann::json& a, std::set<std::string>& weights, std::set<std::string>& acts) {
  if (!a.is_object()) return;
  if (a.value("type", "") == "Quantizer" && a.contains("config") && a["config"].is_object()) {
    const nlohmann::json& c = a["config"];
    const std::string method = c.value("method", ""), target = c.value("target", "");
    if (target == "weight") weights.insert(method);
    else if (method != "input") acts.insert(method);  // the signed input quantizer is no method choice
  }
  if (a.contains("children") && a["children"].is_array())
    for (const auto& c : a["children"]) collect_methods(c, weights, acts);
}
std::string joined(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : "+") + n;
  return out;
}
}  // namespace

bool is_quantized(const ModelSpec& spec) { return !quant_method(spec).empty(); }

std::string quant_method(const ModelSpec& spec) {
  if (spec.policy.quantized() || !spec.name.empty()) return spec.policy.quantized() ? spec.policy.method : "";
  std::set<std::string> weights, acts;
  collect_methods(spec.architecture, weights, acts);
  const std::string w = joined(weights), a = joined(acts);
  for (const PolicyMethod& m : spec.policy.methods().policy_methods())
    if (m.weights == w && m.activations == a) return m.name;
  if (w.empty() || a.empty() || w == a) return w.empty() ? a : w;
  return a + "+" + w;
}

ModelSpec model_spec_for(const std::string& name, const Dataset& data) {
  return {name, {data.channels, data.height, data.width, data.num_classes()}, QuantPolicy{}, nullptr};
}

}  // namespace lowbit
