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
#include "quant/qat_recipe.h"
#include "quant/quantizer.h"

namespace lowbit { class QuantizerRegistry; }

namespace lowbit {

// Every quantizer in the model, by dotted module name (e.g. "4.0.conv1.act_quantizer").
std::vector<std::pair<std::string, std::shared_ptr<Quantizer>>> named_quantizers(Module& model);

// {"<quantizer name>.<scalar>": value} for every alpha, c, d, gamma, s, alpha_w, max_abs.
nlohmann::json quantizer_state(const Module& model);

// fine_tune: the run starts from trained float weights (--init-from), so no warm-up, and
// PACT-SAWB's alpha is held near its MSE start (docs/accuracy.md, the 2-epoch fine-tunes).
// The generic part (one float warm-up epoch from scratch, a weaker weight decay at 2 bits), then the
// policy method's own adjustments from its registration (quant/registry.h PolicyMethod::adjust_recipe).
// Throws lowbit::Error naming an unknown method and the known ones.
QatRecipe default_recipe(const std::string& method, int wbits, int abits, bool fine_tune = false);
QatRecipe default_recipe(const std::string& method, int wbits, int abits, bool fine_tune,
                         const QuantizerRegistry& registry);

}  // namespace lowbit
