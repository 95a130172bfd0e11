// registry.cpp: the table of quantizer methods (registry.h). Each line below is one method's
// registration; the function is defined in the method's own file. An explicit list rather than
// self-registering static objects: a static build of liblowbit would silently drop a method
// whose object file nothing else references, and the order here is the documented order.
#include "quant/registry.h"

#include "core/error.h"
#include "quant/dorefa.h"
#include "quant/input_quantizer.h"
#include "quant/lsq.h"
#include "quant/pact.h"
#include "quant/qil.h"
#include "quant/sawb.h"

namespace lowbit {

const std::vector<QuantizerMethod>& quantizer_methods() {
  static const std::vector<QuantizerMethod> methods = {
      dorefa_method(),
      pact_method(),
      sawb_method(),
      qil_method(),
      lsq_method(),
      input_method(),
  };
  return methods;
}

const QuantizerMethod* find_quantizer_method(const std::string& name) {
  for (const auto& m : quantizer_methods())
    if (m.name == name) return &m;
  return nullptr;
}

std::string join_names(const std::vector<std::string>& names, const char* separator) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : separator) + n;
  return out;
}

namespace {
std::vector<std::string> all_names() {
  std::vector<std::string> names;
  for (const auto& m : quantizer_methods()) names.push_back(m.name);
  return names;
}
}  // namespace

const QuantizerMethod& quantizer_method(const std::string& name) {
  const QuantizerMethod* m = find_quantizer_method(name);
  if (!m) throw Error(detail::concat("unknown quantizer method '", name, "' (known: ", join_names(all_names()), ")"));
  return *m;
}

std::vector<std::string> quantizer_method_names(QuantTarget target) {
  std::vector<std::string> names;
  for (const auto& m : quantizer_methods())
    if (target == QuantTarget::weight ? static_cast<bool>(m.make_weight) : static_cast<bool>(m.make_activation))
      names.push_back(m.name);
  return names;
}

std::shared_ptr<Quantizer> make_quantizer(const std::string& method, QuantTarget target, int bits,
                                          const nlohmann::json& options) {
  const QuantizerMethod& m = quantizer_method(method);
  const bool weight = target == QuantTarget::weight;
  const QuantizerFactory& make = weight ? m.make_weight : m.make_activation;
  if (!make)
    throw Error(detail::concat("quantizer method '", method, "' has no ", weight ? "weight" : "activation",
                               " quantizer (methods with one: ", join_names(quantizer_method_names(target)), ")"));
  return make(bits, options);
}

}  // namespace lowbit
