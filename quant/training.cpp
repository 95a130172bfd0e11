// training.cpp: the quantizers of a model, quantizer logging and default recipes.
#include "quant/training.h"

#include "core/error.h"
#include "quant/policy.h"
#include "quant/registry.h"

namespace lowbit {

std::vector<std::pair<std::string, std::shared_ptr<Quantizer>>> named_quantizers(Module& model) {
  std::vector<std::pair<std::string, std::shared_ptr<Quantizer>>> out;
  for (auto& [name, m] : model.named_modules())
    if (auto q = std::dynamic_pointer_cast<Quantizer>(m)) out.emplace_back(name, q);
  return out;
}

nlohmann::json quantizer_state(const Module& model) {
  nlohmann::json j = nlohmann::json::object();
  // named_modules() does not modify the tree; it is non-const only because it hands out owners.
  for (auto& [qname, q] : named_quantizers(const_cast<Module&>(model)))
    for (auto& [k, v] : q->state_scalars()) j[qname + "." + k] = v;
  return j;
}

nlohmann::json QatRecipe::to_json() const {
  return {{"epochs", epochs},
          {"float_epochs", float_epochs},
          {"lr", lr},
          {"optimizer", optimizer},
          {"momentum", momentum},
          {"weight_decay", weight_decay},
          {"quant_lr_mult", quant_lr_mult},
          {"quant_weight_decay", quant_weight_decay},
          {"schedule", schedule},
          {"lr_warmup_epochs", lr_warmup_epochs},
          {"batch_size", batch_size}};
}

QatRecipe default_recipe(const std::string& method, int wbits, int abits, bool fine_tune) {
  return default_recipe(method, wbits, abits, fine_tune, QuantizerRegistry::builtin());
}

QatRecipe default_recipe(const std::string& method, int wbits, int abits, bool fine_tune,
                         const QuantizerRegistry& registry) {
  QuantPolicy check;
  check.method = method;
  check.wbits = wbits;
  check.abits = abits;
  check.registry = &registry;
  check.validate();
  QatRecipe r;  // fp32: 15 epochs SGD(0.9) lr 0.05 cosine, wd 5e-4, batch 128
  if (method == "fp32") return r;
  // One float epoch first: BN statistics and weights settle, so the statistics inits (PACT MSE
  // clip, LSQ step, QIL interval, SAWB) start near their optimum.
  r.float_epochs = fine_tune ? 0 : 1;
  const int low = std::min(wbits, abits);
  if (low <= 2) r.weight_decay = 2e-4;  // PACT recipe: weaker decay for 2-bit weights
  const PolicyMethod pm = registry.policy_method(method);
  if (pm.adjust_recipe) pm.adjust_recipe(r, RecipeContext{wbits, abits, fine_tune});
  return r;
}

}  // namespace lowbit
