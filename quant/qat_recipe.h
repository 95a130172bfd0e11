// qat_recipe.h: QatRecipe, the default QAT schedule of a policy method (epochs, float warm-up,
// lr, optimizer, schedule, quantizer lr multiplier). default_recipe (quant/training.h) fills the
// generic part; each method's registration (quant/registry.h PolicyMethod::adjust_recipe) adjusts
// it, so nothing switches on method names.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace lowbit {

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

}  // namespace lowbit
