// policy.h: the bit policy of a quantized model and the converter that applies it.
//
// QuantPolicy: method (fp32 | dorefa | pact | pact-sawb | qil | lsq), wbits / abits for the
// middle layers (2..8, or 32 = float), first_last_bits for the first and the last quantizable
// layer (default 8; 32 keeps them float), per-layer overrides "PATTERN=W/A" matched as a glob
// ('*' any run of characters, dots included; '?' one character) against the dotted module name,
// last matching override wins (over first/last too). Module names are the registration names:
// Sequential children are numbered, so in resnet20 "3.0.conv1" is stage 1 block 0's first conv
// and "5.*=4/4" selects the whole third stage; `lowbit inspect` / bits_table() print them.
//
// Methods -> quantizers (weight / activation that feeds the layer): the policy methods of the
// registry the policy names (QuantPolicy::registry, quant/registry.h; builtin by default). Each
// registration lists the policy methods it defines; the builtin ones are:
//   dorefa    DorefaWeightQuantizer / DorefaActQuantizer
//   pact      DorefaWeightQuantizer / PactQuantizer      (registered by pact)
//   pact-sawb SawbQuantizer        / PactQuantizer      (registered by pact)
//   qil       QilWeightQuantizer   / QilActQuantizer
//   lsq       LsqQuantizer(weight) / LsqQuantizer(activation)
// Method-specific options (PACT's init) are QuantPolicy::options, declared by the registrations
// (MethodOption) of the two methods a policy method uses.
// The first layer's input is the normalised (signed) image: it gets a SignedInputQuantizer with
// the first layer's activation bits (8 by default), never an unsigned quantizer; with
// quantize_input = false (or 32 bits) it stays float. The first layer's weights and the last
// layer (weights and its input, which follows a ReLU/pooling and is unsigned) use the method's
// quantizers at first_last_bits, except that DoReFa/PACT/QIL weights (normalised to [-1, 1])
// are replaced there by SAWB's scale-keeping grid (alpha_w = max|w| beyond 5 bits): the last
// layer has no BN to absorb the normalisation and its logits would blow up. "First"/"last" = the first/last Conv2d or Linear in
// named_modules() order (bits_table() lists them; mlp: "1" and "5"). Residual adds, pooling and
// the logits stay float.
//
// convert_model() replaces every Conv2d / Linear child (found through named_modules()) by a
// QuantConv2d / QuantLinear with the weights copied (replace_child keeps typed slots such as
// BasicBlock::conv1 working). Method fp32 leaves the model untouched.
// The policy serialises to JSON so checkpoints store it and `lowbit eval` rebuilds the model:
//   {"method":"pact-sawb","wbits":2,"abits":2,"first_last_bits":8,"quantize_input":true,
//    "options":{"pact_init":"mse"},"overrides":["5.*=4/4"]}
// to_json writes every option of the method, defaults included; from_json also reads the
// top-level "pact_init" of older checkpoints (as the option of a method that has it).
#pragma once
#include <nlohmann/json.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"
#include "quant/quantizer.h"
#include "quant/registry.h"

namespace lowbit {

struct LayerOverride {
  std::string pattern;
  int wbits = 32, abits = 32;
  std::string to_string() const;  // "PATTERN=W/A"
};

struct QuantPolicy {
  std::string method = "fp32";
  int wbits = 32, abits = 32;
  int first_last_bits = 8;
  bool quantize_input = true;
  // Method options by name (MethodOption of the methods in use, e.g. {"pact_init": "p99"});
  // unset ones take their registration's default.
  std::map<std::string, std::string> options;
  std::vector<LayerOverride> overrides;
  // The methods `method` refers to; null: QuantizerRegistry::builtin(). Not serialised: the
  // program that reads a policy says which registry it has (from_json). Must outlive the policy.
  const QuantizerRegistry* registry = nullptr;
  const QuantizerRegistry& methods() const { return registry ? *registry : QuantizerRegistry::builtin(); }

  // Parses "PATTERN=W/A" (e.g. "5.*=4/4", "13=8/8", "0=32/32"). Throws naming the spec.
  static LayerOverride parse_override(const std::string& spec);
  // Throws lowbit::Error naming the field on an unknown method, bits outside {2..8, 32}, an
  // option that neither of the method's quantizers declares, or a value its check refuses.
  void validate() const;
  // The method's options with defaults filled in, as the factories read them (a JSON object).
  nlohmann::json effective_options() const;
  bool quantized() const { return method != "fp32"; }

  nlohmann::json to_json() const;
  // Missing keys keep their defaults; `registry` becomes the policy's (it must outlive it).
  static QuantPolicy from_json(const nlohmann::json& j,
                               const QuantizerRegistry& registry = QuantizerRegistry::builtin());
  std::string to_json_string() const;
  static QuantPolicy from_json_string(const std::string& text,
                                      const QuantizerRegistry& registry = QuantizerRegistry::builtin());
};

// QuantizerRegistry::builtin().policy_method_names(): fp32 dorefa pact pact-sawb qil lsq
std::vector<std::string> quant_method_names();
bool glob_match(const std::string& pattern, const std::string& name);

// The quantizers of the policy's method at the given bits (nullptr for 32 bits), made by the
// policy's registry.
std::shared_ptr<Quantizer> make_weight_quantizer(const QuantPolicy& policy, int bits);
std::shared_ptr<Quantizer> make_act_quantizer(const QuantPolicy& policy, int bits);

// The bits the policy gives each Conv2d/Linear of a float model.
struct LayerPlan {
  std::string name, type;  // dotted module name, "Conv2d" / "Linear"
  int wbits = 32, abits = 32;
  bool first = false, last = false;
};
std::vector<LayerPlan> plan_layers(Module& model, const QuantPolicy& policy);

// Replace Conv2d/Linear children by QuantConv2d/QuantLinear following the policy (see top).
// Returns the plan it applied. Throws when the model is already converted.
std::vector<LayerPlan> convert_model(Module& model, const QuantPolicy& policy);

// One row per Conv2d/Linear (quantized or not) of a model: what it runs at.
struct LayerBits {
  std::string name, type, weight, activation;  // weight/activation: "2b sawb", "8b input", "fp32"
  int wbits = 32, abits = 32;
};
std::vector<LayerBits> layer_bits(Module& model);
// Printable table of layer_bits (name, layer, weights, input activations).
std::string bits_table(Module& model);

}  // namespace lowbit
