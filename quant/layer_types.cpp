// layer_types.cpp: the Quantizer row and the library's layer-type table (layer_types.h).
#include "quant/layer_types.h"

#include <typeindex>

#include "core/error.h"
#include "quant/quant_layers.h"
#include "quant/registry.h"

namespace lowbit {

using json = nlohmann::json;

json quantizer_config(const Quantizer& q) {
  return {{"method", q.method()},
          {"target", q.target() == QuantTarget::weight ? "weight" : "activation"},
          {"bits", q.bits()},
          {"options", q.factory_options()}};
}

std::shared_ptr<Quantizer> rebuild_quantizer(const json& config, const QuantizerRegistry& registry) {
  const std::string target = config_string(config, "target");
  LOWBIT_CHECK(target == "weight" || target == "activation", "quantizer target '", target,
               "' (expected weight | activation)");
  const int64_t bits = config_int(config, "bits");
  LOWBIT_CHECK(bits >= 1 && bits <= 8, "quantizer bits ", bits, " (expected 1..8)");
  const json options = config.contains("options") ? config["options"] : json::object();
  LOWBIT_CHECK(options.is_object(), "quantizer 'options' must be an object, got ", options.dump());
  return registry.make(config_string(config, "method"),
                       target == "weight" ? QuantTarget::weight : QuantTarget::activation, static_cast<int>(bits),
                       options);
}

LayerType quantizer_layer_type(const QuantizerRegistry& registry) {
  LayerType row;
  row.name = "Quantizer";
  row.write = [](const Module& m) { return quantizer_config(dynamic_cast<const Quantizer&>(m)); };
  row.make = [&registry](const json& c, const NamedModules&, Generator&) {
    return std::static_pointer_cast<Module>(rebuild_quantizer(c, registry));
  };
  // A subclass of a registered method's class is not what the registry rebuilds from the method
  // name: there only an exact rebuild counts as described. A method the registry does not know is
  // a program's own: its config is written, and rebuilding it needs that program's registry.
  row.describes = [&registry](const Module& m) {
    const auto* q = dynamic_cast<const Quantizer*>(&m);
    if (!q) return false;
    if (!registry.find(q->method())) return true;
    try {
      const auto rebuilt = rebuild_quantizer(quantizer_config(*q), registry);
      return std::type_index(typeid(*rebuilt)) == std::type_index(typeid(m));
    } catch (const Error&) {
      return false;
    }
  };
  return row;
}

LayerTypes library_layer_types(const QuantizerRegistry& registry) {
  return float_layer_types().extended({
      quant_conv2d_layer_type(),
      quant_linear_layer_type(),
      quantizer_layer_type(registry),
  });
}

}  // namespace lowbit
