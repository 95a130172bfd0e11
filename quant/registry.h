// registry.h: the one table of quantizer methods, keyed by name. A method's file (dorefa, pact,
// sawb, qil, lsq, input_quantizer) owns its training rule (Quantizer::codes, code_spec) and
// describes itself with one QuantizerMethod; registry.cpp lists those functions, one line each.
// The integer meaning of a method name (its ActCodeRule, whether it has a weight grid) is the
// runtime's table (quant/runtime/act_code.h, Module-free); each QuantizerMethod points at its row's
// rule. The policy (quant/policy.h) and export (quant/export/convert.h) look methods up here
// instead of switching on names; an unknown name is a lowbit::Error that names it and lists the
// known ones. The table is built once and never changes (no mutable process-wide state).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "quant/quantizer.h"

namespace lowbit {

// Builds a method's quantizer at `bits`. options: the policy JSON (quant/policy.h); a method
// reads its own keys from it (PACT: "pact_init") and ignores the rest.
using QuantizerFactory = std::function<std::shared_ptr<Quantizer>(int bits, const nlohmann::json& options)>;

struct QuantizerMethod {
  std::string name;                           // == Quantizer::method() == ActCodeSpec::method
  QuantizerFactory make_weight;               // null: the method has no weight quantizer
  QuantizerFactory make_activation;           // null: no activation quantizer
  const ActCodeRule* act_rule = nullptr;  // set exactly when make_activation is (quant/runtime/act_code.h)
};

// Every registered method, in registration order.
const std::vector<QuantizerMethod>& quantizer_methods();
// nullptr when unknown.
const QuantizerMethod* find_quantizer_method(const std::string& name);
// Throws lowbit::Error naming `name` and the known methods.
const QuantizerMethod& quantizer_method(const std::string& name);
// The names of the methods with a quantizer for `target`, e.g. "dorefa, pact, qil, lsq, input".
std::vector<std::string> quantizer_method_names(QuantTarget target);
std::string join_names(const std::vector<std::string>& names, const char* separator = ", ");

// The method's quantizer for `target`; throws naming the method when it has none.
std::shared_ptr<Quantizer> make_quantizer(const std::string& method, QuantTarget target, int bits,
                                          const nlohmann::json& options = nlohmann::json::object());
// act_code_rule(method): quant/runtime/act_code.h (the runtime owns the integer rules).

}  // namespace lowbit
