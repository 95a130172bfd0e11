// sgd.h: SGD with momentum, dampening, Nesterov and L2 weight decay (PyTorch's torch.optim.SGD).
// For each parameter p with a gradient, per step (lr = group lr * lr multiplier):
//   g = grad_scale * grad + weight_decay * p
//   if momentum != 0:
//     buf = g                                        (first step of p)
//     buf = momentum * buf + (1 - dampening) * g     (later steps)
//     g   = nesterov ? g + momentum * buf : buf
//   p = p - lr * g
// Arithmetic is float32 element-wise with the coefficients rounded to float, as PyTorch does.
#pragma once
#include "optim/optimizer.h"

namespace lowbit {

struct SGDOptions {
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;  // needs momentum > 0 and dampening == 0
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions options = {});
  std::string name() const override { return "sgd"; }
  const SGDOptions& options() const { return options_; }

 protected:
  std::vector<std::string> buffer_names() const override;  // {"momentum_buffer"} or {}
  void update_param(const ParamGroup& group, double lr, Tensor& param, const Tensor& grad,
                    ParamState& state) override;

 private:
  SGDOptions options_;
};

}  // namespace lowbit
