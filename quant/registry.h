// registry.h: QuantizerRegistry, the table of quantizer methods keyed by name, and what one
// registration (QuantizerMethod) carries. A method's file (dorefa, pact, sawb, qil, lsq,
// input_quantizer) owns its training rule (Quantizer::codes, code_spec) and describes itself with
// one QuantizerMethod: its factories, its integer rule, the policy methods it defines (alone or
// paired with another method's weights), their recipe adjustments and `--method` help, and its
// options (PACT: pact_init). registry.cpp lists the builtin registrations, one line each.
// The policy (quant/policy.h), default_recipe (quant/training.h), the CLI's --method choices and
// the tests iterate a registry instead of naming methods.
//
// No mutable process-wide state: QuantizerRegistry::builtin() is constant; a program (or a test)
// that has a method of its own copies it and add()s the method, then hands the copy to
// QuantPolicy::registry / lowbit::cli::run. The free functions below are builtin()'s.
//
// Integer meaning: an activation method's act_rule is the runtime's rule (quant/runtime/act_code.h,
// Module-free, keyed by name in the model file) that its code_spec() names. A builtin method
// exports under its own name; a method added by a program maps onto an existing rule whose
// float expression its codes() equal (e.g. a fixed-clip linear quantizer exports as "pact" with
// p0 = its clip): its code_spec().method names that rule and act_rule points at it.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "quant/qat_recipe.h"
#include "quant/quantizer.h"

namespace lowbit {

// Builds a method's quantizer at `bits`. options: the policy's method options (a JSON object,
// e.g. {"pact_init": "mse"}, quant/policy.h QuantPolicy::options); a method reads its own keys
// and ignores the rest.
using QuantizerFactory = std::function<std::shared_ptr<Quantizer>(int bits, const nlohmann::json& options)>;

// A method-specific option of the policy (QuantPolicy::options, the CLI flag "--" + name with
// '_' -> '-', e.g. pact_init -> --pact-init).
struct MethodOption {
  std::string name;           // key in QuantPolicy::options, e.g. "pact_init"
  std::string default_value;  // used when the policy does not set it
  std::string help;           // one line for the CLI
  // Throws lowbit::Error naming the value and the accepted forms; null: any value.
  std::function<void(const std::string& value)> check;
};

// What a recipe adjustment sees: the generic recipe is already filled in.
struct RecipeContext {
  int wbits = 32, abits = 32;
  bool fine_tune = false;  // the run starts from trained float weights (TrainerOptions init_from)
};

// A policy method (QuantPolicy::method, `lowbit train --method`): which registered method
// quantizes the weights and which the activations.
struct PolicyMethod {
  std::string name;         // e.g. "pact-sawb"
  std::string weights;      // registered method with a weight quantizer, e.g. "sawb"
  std::string activations;  // registered method with an activation quantizer, e.g. "pact"
  std::string help;         // e.g. "PACT activations + SAWB weights, the 2-bit recipe"
  // Changes to the generic QAT recipe (quant/training.h default_recipe); null: none.
  std::function<void(QatRecipe& recipe, const RecipeContext& context)> adjust_recipe;
};

struct QuantizerMethod {
  std::string name;                       // == Quantizer::method()
  QuantizerFactory make_weight;           // null: the method has no weight quantizer
  QuantizerFactory make_activation;       // null: no activation quantizer
  const ActCodeRule* act_rule = nullptr;  // set exactly when make_activation is (see the top)
  // The policy methods this registration defines (a method with both quantizers usually defines
  // one of its own name; an activation-only method pairs with another method's weights).
  std::vector<PolicyMethod> policies;
  std::vector<MethodOption> options;  // read by its factories from the policy's options
};

class QuantizerRegistry {
 public:
  QuantizerRegistry() = default;  // empty
  // dorefa, pact, sawb, qil, lsq, input (registry.cpp); built once, never changed.
  static const QuantizerRegistry& builtin();

  // Appends a method. Throws lowbit::Error when its name or one of its policy names is taken,
  // when it has no quantizer, or when act_rule is not set exactly when make_activation is.
  QuantizerRegistry& add(QuantizerMethod method);

  // Every method, in registration order.
  const std::vector<QuantizerMethod>& methods() const { return methods_; }
  const QuantizerMethod* find(const std::string& name) const;  // nullptr when unknown
  // Throws lowbit::Error naming `name` and the known methods.
  const QuantizerMethod& method(const std::string& name) const;
  // The names of the methods with a quantizer for `target`, e.g. "dorefa, pact, qil, lsq, input".
  std::vector<std::string> names(QuantTarget target) const;
  // The method's quantizer for `target`; throws naming the method when it has none.
  std::shared_ptr<Quantizer> make(const std::string& method, QuantTarget target, int bits,
                                  const nlohmann::json& options = nlohmann::json::object()) const;

  // Every policy method, in registration order (fp32 is not one: it is no quantization).
  std::vector<PolicyMethod> policy_methods() const;
  // "fp32" then every policy method's name.
  std::vector<std::string> policy_method_names() const;
  // Throws lowbit::Error naming `name` and the known policy methods (fp32 included).
  PolicyMethod policy_method(const std::string& name) const;
  // The options of the methods a policy method uses (weights first), each once.
  std::vector<MethodOption> options_of(const std::string& policy_method) const;
  // Every option of every method, each name once (the CLI offers them all).
  std::vector<MethodOption> all_options() const;

 private:
  std::vector<QuantizerMethod> methods_;
};

// builtin()'s table, for code that only knows the builtin methods.
const std::vector<QuantizerMethod>& quantizer_methods();
const QuantizerMethod* find_quantizer_method(const std::string& name);
const QuantizerMethod& quantizer_method(const std::string& name);
std::vector<std::string> quantizer_method_names(QuantTarget target);
std::shared_ptr<Quantizer> make_quantizer(const std::string& method, QuantTarget target, int bits,
                                          const nlohmann::json& options = nlohmann::json::object());
std::string join_names(const std::vector<std::string>& names, const char* separator = ", ");
// act_code_rule(method): quant/runtime/act_code.h (the runtime owns the integer rules).

}  // namespace lowbit
