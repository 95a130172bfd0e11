// make_optimizer.h: build an optimizer from its name, for the CLI's --optimizer flag.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "optim/adam.h"
#include "optim/optimizer.h"
#include "optim/sgd.h"

namespace lowbit {

// The union of the per-optimizer options; each optimizer reads the fields it uses.
struct OptimizerConfig {
  SGDOptions sgd{0.9, 0.0, false};  // momentum 0.9 by default: the recipes in the reference use it
  AdamOptions adam{};
};

// name: "sgd" | "adam" | "adamw". Throws lowbit::Error naming an unknown name.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamGroup> groups,
                                          const OptimizerConfig& config = {});

}  // namespace lowbit
