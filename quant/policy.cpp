// policy.cpp: QuantPolicy parsing/JSON, the Conv2d/Linear -> QuantConv2d/QuantLinear converter and
// the bits table.
#include "quant/policy.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "quant/quant_layers.h"
#include "quant/registry.h"

namespace lowbit {

namespace {
bool valid_bits(int b) { return (b >= 2 && b <= 8) || b == 32; }

int parse_int(const std::string& s, const std::string& spec) {
  size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  LOWBIT_CHECK(used == s.size() && !s.empty(), "layer override '", spec, "': expected PATTERN=W/A with integer bits");
  return v;
}
}  // namespace

std::vector<std::string> quant_method_names() { return QuantizerRegistry::builtin().policy_method_names(); }

bool glob_match(const std::string& p, const std::string& s) {
  // Iterative wildcard match with backtracking to the last '*'.
  size_t i = 0, j = 0, star = std::string::npos, mark = 0;
  while (j < s.size()) {
    if (i < p.size() && (p[i] == '?' || p[i] == s[j])) {
      ++i;
      ++j;
    } else if (i < p.size() && p[i] == '*') {
      star = i++;
      mark = j;
    } else if (star != std::string::npos) {
      i = star + 1;
      j = ++mark;
    } else {
      return false;
    }
  }
  while (i < p.size() && p[i] == '*') ++i;
  return i == p.size();
}

std::string LayerOverride::to_string() const { return detail::concat(pattern, "=", wbits, "/", abits); }

LayerOverride QuantPolicy::parse_override(const std::string& spec) {
  const size_t eq = spec.rfind('=');
  LOWBIT_CHECK(eq != std::string::npos && eq > 0, "layer override '", spec, "': expected PATTERN=W/A, e.g. '5.*=4/4'");
  const std::string bits = spec.substr(eq + 1);
  const size_t slash = bits.find('/');
  LOWBIT_CHECK(slash != std::string::npos, "layer override '", spec, "': expected PATTERN=W/A, e.g. '5.*=4/4'");
  LayerOverride o;
  o.pattern = spec.substr(0, eq);
  o.wbits = parse_int(bits.substr(0, slash), spec);
  o.abits = parse_int(bits.substr(slash + 1), spec);
  LOWBIT_CHECK(valid_bits(o.wbits) && valid_bits(o.abits), "layer override '", spec,
               "': bits must be 2..8 or 32 (float)");
  return o;
}

void QuantPolicy::validate() const {
  const QuantizerRegistry& reg = methods();
  std::vector<MethodOption> known;
  if (method != "fp32") known = reg.options_of(method);  // throws naming the known methods
  LOWBIT_CHECK(valid_bits(wbits), "quant policy: wbits must be 2..8 or 32 (float), got ", wbits);
  LOWBIT_CHECK(valid_bits(abits), "quant policy: abits must be 2..8 or 32 (float), got ", abits);
  LOWBIT_CHECK(valid_bits(first_last_bits), "quant policy: first_last_bits must be 2..8 or 32 (float), got ",
               first_last_bits);
  for (const auto& [name, value] : options) {
    const MethodOption* option = nullptr;
    std::vector<std::string> names;
    for (const auto& o : known) {
      names.push_back(o.name);
      if (o.name == name) option = &o;
    }
    LOWBIT_CHECK(option, "quant policy: option '", name, "' is not an option of method '", method, "' (its options: ",
                 names.empty() ? std::string("none") : join_names(names), ")");
    if (option->check) option->check(value);  // throws naming the value
  }
  for (const auto& o : overrides)
    LOWBIT_CHECK(valid_bits(o.wbits) && valid_bits(o.abits), "quant policy: override '", o.to_string(),
                 "' bits must be 2..8 or 32");
}

nlohmann::json QuantPolicy::to_json() const {
  nlohmann::json j;
  j["method"] = method;
  j["wbits"] = wbits;
  j["abits"] = abits;
  j["first_last_bits"] = first_last_bits;
  j["quantize_input"] = quantize_input;
  j["options"] = effective_options();
  j["overrides"] = nlohmann::json::array();
  for (const auto& o : overrides) j["overrides"].push_back(o.to_string());
  return j;
}

nlohmann::json QuantPolicy::effective_options() const {
  nlohmann::json j = nlohmann::json::object();
  bool known = false;  // an unknown method has no defaults (validate() reports it)
  for (const auto& n : methods().policy_method_names()) known = known || (n == method && n != "fp32");
  if (known)
    for (const auto& o : methods().options_of(method)) j[o.name] = o.default_value;
  for (const auto& [name, value] : options) j[name] = value;
  return j;
}

QuantPolicy QuantPolicy::from_json(const nlohmann::json& j, const QuantizerRegistry& registry) {
  LOWBIT_CHECK(j.is_object(), "quant policy JSON must be an object, got: ", j.dump());
  QuantPolicy p;
  p.registry = &registry;
  try {
    if (j.contains("method")) p.method = j.at("method").get<std::string>();
    if (j.contains("wbits")) p.wbits = j.at("wbits").get<int>();
    if (j.contains("abits")) p.abits = j.at("abits").get<int>();
    if (j.contains("first_last_bits")) p.first_last_bits = j.at("first_last_bits").get<int>();
    if (j.contains("quantize_input")) p.quantize_input = j.at("quantize_input").get<bool>();
    if (j.contains("options"))
      for (const auto& [name, value] : j.at("options").items()) p.options[name] = value.get<std::string>();
    // Checkpoints before method options stored PACT's init at the top level, for every method.
    if (j.contains("pact_init") && !j.contains("options") && p.method != "fp32") {
      bool has = false;
      for (const auto& o : registry.options_of(p.method)) has = has || o.name == "pact_init";
      if (has) p.options["pact_init"] = j.at("pact_init").get<std::string>();
    }
    if (j.contains("overrides"))
      for (const auto& o : j.at("overrides")) p.overrides.push_back(parse_override(o.get<std::string>()));
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat("quant policy JSON: ", e.what()));
  }
  p.validate();
  return p;
}

std::string QuantPolicy::to_json_string() const { return to_json().dump(); }

QuantPolicy QuantPolicy::from_json_string(const std::string& text, const QuantizerRegistry& registry) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat("quant policy JSON does not parse: ", e.what()));
  }
  return from_json(j, registry);
}

std::shared_ptr<Quantizer> make_weight_quantizer(const QuantPolicy& p, int bits) {
  if (bits == 32 || p.method == "fp32") return nullptr;
  return p.methods().make(p.methods().policy_method(p.method).weights, QuantTarget::weight, bits, p.effective_options());
}

std::shared_ptr<Quantizer> make_act_quantizer(const QuantPolicy& p, int bits) {
  if (bits == 32 || p.method == "fp32") return nullptr;
  return p.methods().make(p.methods().policy_method(p.method).activations, QuantTarget::activation, bits,
                          p.effective_options());
}

namespace {
bool is_layer(const Module& m) {
  return dynamic_cast<const Conv2d*>(&m) != nullptr || dynamic_cast<const Linear*>(&m) != nullptr;
}
bool is_quant_layer(const Module& m) { return dynamic_cast<const QuantLayer*>(&m) != nullptr; }
}  // namespace

std::vector<LayerPlan> plan_layers(Module& model, const QuantPolicy& policy) {
  policy.validate();
  std::vector<LayerPlan> plan;
  for (auto& [name, m] : model.named_modules()) {
    if (!is_layer(*m)) continue;
    LayerPlan lp;
    lp.name = name;
    lp.type = dynamic_cast<const Conv2d*>(m.get()) ? "Conv2d" : "Linear";
    lp.wbits = policy.wbits;
    lp.abits = policy.abits;
    plan.push_back(lp);
  }
  if (plan.empty()) return plan;
  plan.front().first = true;
  plan.back().last = true;
  for (auto& lp : plan) {
    if (lp.first || lp.last) lp.wbits = lp.abits = policy.first_last_bits;
    for (const auto& o : policy.overrides)
      if (glob_match(o.pattern, lp.name)) {
        lp.wbits = o.wbits;
        lp.abits = o.abits;
      }
    if (!policy.quantized()) lp.wbits = lp.abits = 32;
  }
  return plan;
}

std::vector<LayerPlan> convert_model(Module& model, const QuantPolicy& policy) {
  auto plan = plan_layers(model, policy);
  if (!policy.quantized()) return plan;
  for (auto& [name, m] : model.named_modules())
    LOWBIT_CHECK(!is_quant_layer(*m), "convert_model: module '", name, "' is already a ", m->type_name(),
                 " (convert a float model once)");
  // Parent of each dotted name: walk named_modules once and index them.
  auto modules = model.named_modules();
  auto find_module = [&](const std::string& n) -> std::shared_ptr<Module> {
    for (auto& [mn, mm] : modules)
      if (mn == n) return mm;
    return nullptr;
  };
  for (const auto& lp : plan) {
    LOWBIT_CHECK(!lp.name.empty(), "convert_model: the model itself is a ", lp.type,
                 "; wrap it in a Sequential so it can be replaced");
    const size_t dot = lp.name.rfind('.');
    const std::string parent_name = dot == std::string::npos ? "" : lp.name.substr(0, dot);
    const std::string child_name = dot == std::string::npos ? lp.name : lp.name.substr(dot + 1);
    auto parent = find_module(parent_name);
    auto child = find_module(lp.name);
    LOWBIT_CHECK(parent && child, "convert_model: lost module '", lp.name, "'");
    // DoReFa and QIL weights are normalised to [-1, 1] (!keeps_scale()); the last layer has no BN
    // to absorb that scale (logits would blow up), so first/last layers use the scale-keeping SAWB
    // grid (max|w| beyond 5 bits) for those methods.
    auto wq = make_weight_quantizer(policy, lp.wbits);
    if ((lp.first || lp.last) && wq && !wq->keeps_scale())
      wq = policy.methods().make("sawb", QuantTarget::weight, lp.wbits);
    std::shared_ptr<Quantizer> aq;
    if (lp.first)
      aq = (policy.quantize_input && lp.abits != 32) ? policy.methods().make("input", QuantTarget::activation, lp.abits)
                                                     : nullptr;
    else
      aq = make_act_quantizer(policy, lp.abits);
    std::shared_ptr<Module> replacement;
    if (auto conv = std::dynamic_pointer_cast<Conv2d>(child))
      replacement = QuantConv2d::from(*conv, wq, aq);
    else
      replacement = QuantLinear::from(*std::dynamic_pointer_cast<Linear>(child), wq, aq);
    parent->replace_child(child_name, replacement);
  }
  return plan;
}

std::vector<LayerBits> layer_bits(Module& model) {
  std::vector<LayerBits> rows;
  auto side = [](const Quantizer* q, int& bits) {
    bits = q ? q->bits() : 32;
    return q ? detail::concat(q->bits(), "b ", q->method()) : std::string("fp32");
  };
  for (auto& [name, m] : model.named_modules()) {
    if (!is_layer(*m)) continue;
    LayerBits r;
    r.name = name;
    r.type = m->type_name();
    const Quantizer *wq = nullptr, *aq = nullptr;
    if (auto ql = dynamic_cast<QuantLayer*>(m.get())) {
      wq = ql->weight_quantizer.get();
      aq = ql->act_quantizer.get();
    }
    r.weight = side(wq, r.wbits);
    r.activation = side(aq, r.abits);
    rows.push_back(r);
  }
  return rows;
}

std::string bits_table(Module& model) {
  const auto rows = layer_bits(model);
  size_t wn = 5, wt = 5, ww = 7;
  for (const auto& r : rows) {
    wn = std::max(wn, r.name.size());
    wt = std::max(wt, r.type.size());
    ww = std::max(ww, r.weight.size());
  }
  std::ostringstream os;
  auto pad = [](const std::string& s, size_t w) { return s + std::string(w - std::min(w, s.size()), ' '); };
  os << pad("layer", wn) << "  " << pad("type", wt) << "  " << pad("weights", ww) << "  input\n";
  for (const auto& r : rows)
    os << pad(r.name, wn) << "  " << pad(r.type, wt) << "  " << pad(r.weight, ww) << "  " << r.activation << "\n";
  return os.str();
}

}  // namespace lowbit
