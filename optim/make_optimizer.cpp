// make_optimizer.cpp: name -> optimizer.
#include "optim/make_optimizer.h"

#include "core/error.h"

namespace lowbit {

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamGroup> groups,
                                          const OptimizerConfig& config) {
  if (name == "sgd") return std::make_unique<SGD>(std::move(groups), config.sgd);
  if (name == "adam") return std::make_unique<Adam>(std::move(groups), config.adam);
  if (name == "adamw") return std::make_unique<AdamW>(std::move(groups), config.adam);
  throw Error("unknown optimizer '" + name + "', expected one of: sgd, adam, adamw");
}

}  // namespace lowbit
