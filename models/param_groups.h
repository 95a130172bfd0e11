// param_groups.h: the optimizer parameter groups of a model, float or quantized. The quantizers
// declare how their learned parameters must be optimized (Quantizer::param_specs, quant/); this
// file turns that into optim/ ParamGroups, so quant/ never depends on optim/.
#pragma once
#include <vector>

#include "layers/module.h"
#include "optim/optimizer.h"
#include "quant/policy.h"

namespace lowbit {

// Groups: "weights" (every parameter that is not a quantizer's: weights, biases, BN gamma/beta;
// lr, weight_decay), then one group per quantizer-parameter kind:
//   "pact.alpha"  lr, weight_decay (the paper's L2 on alpha with lambda = the weights' decay, unless
//                 QuantGroupOptions::weight_decay says otherwise),
//                 min_value 1e-3
//   "lsq.s"       lr, no decay, min_value 1e-5 (the gradient scale is in the raw gradient)
//   "qil.c" / "qil.d" / "qil.gamma" of each quantizer: one group per parameter, named
//                 "qil.d:<quantizer name>", lr, no decay, grad_scale = 1/sqrt(N * q) of that layer
//                 (0 until its first enabled forward, refreshed after every step by post_step),
//                 min_value: d 1e-6, gamma 0.1.
// QuantGroupOptions tune every quantizer group at once: PACT's alpha gradient sees only the clipped
// tail, so at 2 bits alpha widens past its optimum unless its lr or L2 hold it (docs/accuracy.md).
// Empty groups are left out. Every trainable parameter appears in exactly one group.
struct QuantGroupOptions {
  double lr_mult = 1.0;        // quantizer groups' lr = lr * lr_mult (> 0)
  double weight_decay = -1.0;  // L2 on the parameters that take decay (PACT alpha); < 0: the weights'
};
std::vector<ParamGroup> make_param_groups(Module& model, double lr, double weight_decay,
                                          const QuantGroupOptions& quant = {});

// The groups a training run uses: one "weights" group (lr, weight_decay) for a float model
// (policy fp32), make_param_groups for a quantized one.
std::vector<ParamGroup> parameter_groups(Module& model, const QuantPolicy& policy, double lr, double weight_decay,
                                         const QuantGroupOptions& quant = {});

}  // namespace lowbit
