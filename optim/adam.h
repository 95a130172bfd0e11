// adam.h: Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay),
// matching torch.optim.Adam / AdamW (amsgrad not supported).
// For each parameter p with a gradient, t = p's own step count (1 on its first update),
// lr = group lr * lr multiplier, wd = group weight_decay:
//   AdamW only:  p = p * (1 - lr * wd)
//   g  = grad_scale * grad + (Adam only) wd * p
//   m  = beta1 * m + (1 - beta1) * g                 (m, v start at 0)
//   v  = beta2 * v + (1 - beta2) * g * g
//   step_size = lr / (1 - beta1^t);   bc2 = sqrt(1 - beta2^t)      (in double)
//   p  = p - step_size * m / (sqrt(v) / bc2 + eps)  (eps outside the sqrt)
// Element-wise arithmetic is float32; the bias corrections are computed in double and rounded.
#pragma once
#include "optim/optimizer.h"

namespace lowbit {

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
  std::string name() const override { return decoupled_ ? "adamw" : "adam"; }
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(std::vector<ParamGroup> groups, AdamOptions options, bool decoupled_weight_decay);
  std::vector<std::string> buffer_names() const override;  // {"exp_avg", "exp_avg_sq"}
  void update_param(const ParamGroup& group, double lr, Tensor& param, const Tensor& grad,
                    ParamState& state) override;

 private:
  AdamOptions options_;
  bool decoupled_ = false;
};

// Adam with decoupled weight decay (Loshchilov & Hutter): the decay shrinks p directly instead
// of entering m and v, so it is not rescaled by 1/sqrt(v).
class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamOptions options = {});
};

}  // namespace lowbit
