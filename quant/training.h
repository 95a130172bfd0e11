// training.h: what a QAT trainer needs from quant/: the quantizers of a model, per-epoch logging
// of every quantizer scalar, and the default recipe per method. The optimizer parameter groups
// built from the quantizers' param_specs() live with the Trainer (models/param_groups.h).
//
// Order for the trainer (see quant/README.md):
//   1. model = make_model(...); convert_model(*model, policy)         (policy JSON -> checkpoint)
//   2. load a checkpoint if resuming (model.load_state_dict)
//   3. groups = make_param_groups(*model, lr, weight_decay) (models/param_groups.h);
//      optimizer = make_optimizer(.., groups)
//   4. each epoch: set_quantization_enabled(*model, epoch >= recipe.float_epochs)   (float warm-up)
//   5. each step: forward, loss, backward, optimizer->step(). Nothing else: the clamps (PACT
//      alpha >= 1e-3, QIL d >= 1e-6, LSQ s >= 1e-5) are the groups' min_value, the QIL gradient
//      scale is the group's grad_scale (refreshed by its post_step), statistics inits run inside
//      the first enabled forward.
//   6. log quantizer_state(*model) per epoch; store policy.to_json() in the checkpoint.
#pragma once
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/module.h"
#include "quant/quantizer.h"

namespace lowbit {

// Every quantizer in the model, by dotted module name (e.g. "4.0.conv1.act_quantizer").
std::vector<std::pair<std::string, std::shared_ptr<Quantizer>>> named_quantizers(Module& model);

// {"<quantizer name>.<scalar>": value} for every alpha, c, d, gamma, s, alpha_w, max_abs.
nlohmann::json quantizer_state(const Module& model);

// Default QAT schedule per method and bit width (the trainer's defaults; Fashion-MNIST / CIFAR
// convnet-sized). float_epochs = epochs of the float warm-up before quantization is enabled.
struct QatRecipe {
  int epochs = 15;
  int float_epochs = 0;
  double lr = 0.05;
  std::string optimizer = "sgd";  // make_optimizer name; SGD with momentum 0.9
  double momentum = 0.9;
  double weight_decay = 5e-4;
  double quant_lr_mult = 1.0;        // lr of the quantizer parameters = lr * this (make_param_groups)
  double quant_weight_decay = -1.0;  // L2 on PACT's alpha; < 0: the weights' decay
  std::string schedule = "cosine";  // LrSchedule::from_name
  double lr_warmup_epochs = 0.0;
  int64_t batch_size = 128;
  nlohmann::json to_json() const;
};
// fine_tune: the run starts from trained float weights (--init-from), so no warm-up, and
// PACT-SAWB's alpha is held near its MSE start (docs/accuracy.md, the 2-epoch fine-tunes).
QatRecipe default_recipe(const std::string& method, int wbits, int abits, bool fine_tune = false);

}  // namespace lowbit
