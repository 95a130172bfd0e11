// registry.cpp: QuantizerRegistry (registry.h) and the builtin table. Each line of builtin() is
// one method's registration; the function is defined in the method's own file. An explicit list
// rather than self-registering static objects: a static build of liblowbit would silently drop a
// method whose object file nothing else references, and the order here is the documented order.
#include "quant/registry.h"

#include "core/error.h"
#include "quant/dorefa.h"
#include "quant/input_quantizer.h"
#include "quant/lsq.h"
#include "quant/pact.h"
#include "quant/qil.h"
#include "quant/sawb.h"

namespace lowbit {

const QuantizerRegistry& QuantizerRegistry::builtin() {
  static const QuantizerRegistry registry = [] {
    QuantizerRegistry r;
    r.add(dorefa_method());
    r.add(pact_method());
    r.add(sawb_method());
    r.add(qil_method());
    r.add(lsq_method());
    r.add(input_method());
    return r;
  }();
  return registry;
}

std::string join_names(const std::vector<std::string>& names, const char* separator) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : separator) + n;
  return out;
}

QuantizerRegistry& QuantizerRegistry::add(QuantizerMethod m) {
  LOWBIT_CHECK(!m.name.empty(), "QuantizerRegistry::add: a method needs a name");
  LOWBIT_CHECK(!find(m.name), "QuantizerRegistry::add: method '", m.name, "' is already registered");
  LOWBIT_CHECK(m.make_weight || m.make_activation, "QuantizerRegistry::add: method '", m.name,
               "' has neither a weight nor an activation quantizer");
  LOWBIT_CHECK(static_cast<bool>(m.make_activation) == (m.act_rule != nullptr), "QuantizerRegistry::add: method '",
               m.name, "' needs act_rule exactly when it has an activation quantizer (quant/runtime/act_code.h)");
  const auto known = policy_method_names();
  for (const auto& p : m.policies) {
    LOWBIT_CHECK(!p.name.empty() && p.name != "fp32", "QuantizerRegistry::add: method '", m.name,
                 "': a policy method needs a name other than fp32");
    for (const auto& k : known)
      LOWBIT_CHECK(k != p.name, "QuantizerRegistry::add: policy method '", p.name, "' of '", m.name,
                   "' is already defined");
  }
  methods_.push_back(std::move(m));
  return *this;
}

const QuantizerMethod* QuantizerRegistry::find(const std::string& name) const {
  for (const auto& m : methods_)
    if (m.name == name) return &m;
  return nullptr;
}

const QuantizerMethod& QuantizerRegistry::method(const std::string& name) const {
  const QuantizerMethod* m = find(name);
  if (!m) {
    std::vector<std::string> all;
    for (const auto& k : methods_) all.push_back(k.name);
    throw Error(detail::concat("unknown quantizer method '", name, "' (known: ", join_names(all), ")"));
  }
  return *m;
}

std::vector<std::string> QuantizerRegistry::names(QuantTarget target) const {
  std::vector<std::string> out;
  for (const auto& m : methods_)
    if (target == QuantTarget::weight ? static_cast<bool>(m.make_weight) : static_cast<bool>(m.make_activation))
      out.push_back(m.name);
  return out;
}

std::shared_ptr<Quantizer> QuantizerRegistry::make(const std::string& name, QuantTarget target, int bits,
                                                   const nlohmann::json& options) const {
  const QuantizerMethod& m = method(name);
  const bool weight = target == QuantTarget::weight;
  const QuantizerFactory& make = weight ? m.make_weight : m.make_activation;
  if (!make)
    throw Error(detail::concat("quantizer method '", name, "' has no ", weight ? "weight" : "activation",
                               " quantizer (methods with one: ", join_names(names(target)), ")"));
  return make(bits, options);
}

std::vector<PolicyMethod> QuantizerRegistry::policy_methods() const {
  std::vector<PolicyMethod> out;
  for (const auto& m : methods_)
    for (const auto& p : m.policies) out.push_back(p);
  return out;
}

std::vector<std::string> QuantizerRegistry::policy_method_names() const {
  std::vector<std::string> out = {"fp32"};
  for (const auto& p : policy_methods()) out.push_back(p.name);
  return out;
}

PolicyMethod QuantizerRegistry::policy_method(const std::string& name) const {
  for (const auto& p : policy_methods())
    if (p.name == name) return p;
  throw Error(detail::concat("quant policy: unknown method '", name, "' (expected ",
                             join_names(policy_method_names(), " | "), ")"));
}

std::vector<MethodOption> QuantizerRegistry::options_of(const std::string& policy_name) const {
  const PolicyMethod p = policy_method(policy_name);
  std::vector<MethodOption> out;
  for (const std::string& side : {p.weights, p.activations})
    for (const auto& o : method(side).options) {
      bool seen = false;
      for (const auto& k : out) seen = seen || k.name == o.name;
      if (!seen) out.push_back(o);
    }
  return out;
}

std::vector<MethodOption> QuantizerRegistry::all_options() const {
  std::vector<MethodOption> out;
  for (const auto& m : methods_)
    for (const auto& o : m.options) {
      bool seen = false;
      for (const auto& k : out) seen = seen || k.name == o.name;
      if (!seen) out.push_back(o);
    }
  return out;
}

const std::vector<QuantizerMethod>& quantizer_methods() { return QuantizerRegistry::builtin().methods(); }
const QuantizerMethod* find_quantizer_method(const std::string& name) { return QuantizerRegistry::builtin().find(name); }
const QuantizerMethod& quantizer_method(const std::string& name) { return QuantizerRegistry::builtin().method(name); }
std::vector<std::string> quantizer_method_names(QuantTarget target) { return QuantizerRegistry::builtin().names(target); }
std::shared_ptr<Quantizer> make_quantizer(const std::string& method, QuantTarget target, int bits,
                                          const nlohmann::json& options) {
  return QuantizerRegistry::builtin().make(method, target, bits, options);
}

}  // namespace lowbit
