// training.cpp: the quantizers of a model, quantizer logging and default recipes.
#include "quant/training.h"

#include "core/error.h"
#include "quant/policy.h"

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
  QuantPolicy check;
  check.method = method;
  check.wbits = wbits;
  check.abits = abits;
  check.validate();
  QatRecipe r;  // fp32: 15 epochs SGD(0.9) lr 0.05 cosine, wd 5e-4, batch 128
  if (method == "fp32") return r;
  // One float epoch first: BN statistics and weights settle, so the statistics inits (PACT MSE
  // clip, LSQ step, QIL interval, SAWB) start near their optimum.
  r.float_epochs = fine_tune ? 0 : 1;
  // PACT's alpha gradient only widens the clip (it lacks the step-size term LSQ's has); from
  // trained weights the MSE start is already the optimum, and alpha at lr x 0.01 keeps it there:
  // 2-epoch W2A2 fine-tunes 91.84 -> 92.10 (convnet), 92.28 -> 92.62 (resnet20), DoReFa 92.08 / 91.69.
  if (fine_tune && method == "pact-sawb") r.quant_lr_mult = 0.01;
  const int low = std::min(wbits, abits);
  if (low <= 2) r.weight_decay = 2e-4;  // PACT recipe: weaker decay for 2-bit weights
  if (method == "qil" || method == "lsq") r.lr = 0.02;  // learned intervals: a gentler start
  return r;
}

}  // namespace lowbit
