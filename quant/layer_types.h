// layer_types.h: the layer-type table of every library layer (layers/layer_config.h): the float
// rows of layers/ plus quant/'s own: QuantConv2d, QuantLinear (quant/quant_layers.h) and
// "Quantizer", the one row of every quantizer:
//   {"method": "pact", "target": "activation", "bits": 2, "options": {"pact_init": "mse"}}
// rebuilt by a quantizer registry's make(method, target, bits, options) (quant/registry.h) in
// exactly one place (rebuild_quantizer). A quantizer's learned state (alpha, step, SAWB's alpha_w, the
// "initialized" flag) lives in the state dict; the config is its architecture only. layers/ cannot
// see quant/ (dependencies point down), so this table extends float_layer_types() explicitly.
#pragma once
#include <memory>

#include <nlohmann/json.hpp>

#include "layers/layer_config.h"
#include "quant/quantizer.h"
#include "quant/registry.h"

namespace lowbit {

// {"method", "target" ("weight" | "activation"), "bits", "options"} of `q`.
nlohmann::json quantizer_config(const Quantizer& q);
// The quantizer a quantizer_config describes, from `registry` (a program's own methods included
// when it added them). Throws lowbit::Error naming a missing or malformed field or an unknown method.
std::shared_ptr<Quantizer> rebuild_quantizer(const nlohmann::json& config, const QuantizerRegistry& registry);
// The Quantizer row over `registry` (which must outlive it). It describes a quantizer that
// `registry` rebuilds as the same class, and one whose method `registry` does not know (the
// config is written; rebuilding it needs a registry with that method).
LayerType quantizer_layer_type(const QuantizerRegistry& registry);

// float_layer_types() + QuantConv2d, QuantLinear, Quantizer: every type a model built from library
// layers contains. What checkpoints and exported files record, and what the CLI rebuilds with.
// `registry` must outlive the table.
LayerTypes library_layer_types(const QuantizerRegistry& registry = QuantizerRegistry::builtin());

}  // namespace lowbit
