// optimizer.h: Optimizer, the base of every lowbit optimizer, and ParamGroup.
// Owns what all optimizers share: parameter groups (each with its own lr, weight decay, gradient
// scale, value clamp and post-step hook), the global lr multiplier an LrSchedule drives, per-
// parameter state (step counter + named buffers), zero_grad, and the checkpoint format
// (state_dict / load_state_dict). The update rule itself lives in sgd.h and adam.h.
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/state_dict.h"
#include "core/tensor.h"

namespace lowbit {

// One set of parameters that share hyperparameters. For every parameter p of the group whose
// .grad is defined, one step computes
//   g  = grad_scale * p.grad + (L2-style optimizers) weight_decay * p
//   p  = update(p, g, lr_eff)                     (sgd.h / adam.h give the formula)
//   p  = min(max(p, min_value), max_value)        (only when a bound is finite)
// with lr_eff = lr * Optimizer::lr_multiplier(); then post_step(group) runs once per step.
//
// Quantizer parameters (PACT alpha, QIL c/d/gamma, LSQ step) go in groups of their own:
//  * their own lr / weight_decay (PACT's L2 on alpha = weight_decay of its group);
//  * min_value: a clamp the quantizer requests without the optimizer knowing why
//    (PACT alpha >= 1e-3, QIL d >= 1e-6, LSQ step > 0);
//  * a per-group lr multiplier needs nothing new: set the group's own `lr` to
//    base_lr * multiplier (the schedule scales every group's lr by the same factor);
//  * grad_scale multiplies the raw gradient before decay and momentum. It is the "scale outside
//    the formula" of QIL/LSQ: .grad stays equal to the golden vectors, the optimizer applies the
//    scale. For SGD without weight decay grad_scale = s is the same as lr *= s; for Adam it is
//    not (Adam is invariant to the gradient's scale, except through eps), so prefer an lr for Adam.
//  * post_step: any other projection (e.g. keep c > d); runs after the group's update even
//    when no parameter of the group had a gradient this step.
struct ParamGroup {
  std::string name;
  std::vector<Tensor> params;
  double lr = 0.0;            // base learning rate of this group
  double weight_decay = 0.0;
  double grad_scale = 1.0;
  double min_value = -std::numeric_limits<double>::infinity();
  double max_value = std::numeric_limits<double>::infinity();
  std::function<void(ParamGroup&)> post_step = nullptr;  // initialised: {name, params, lr, wd} aggregates stay -Wextra clean
};

class Optimizer {
 public:
  virtual ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter whose .grad is defined (others are skipped and keep their
  // state). In place on data(): nothing is recorded in the autograd graph.
  void step();
  // grad := 0 for every parameter (kept allocated), or undefined with set_to_none.
  void zero_grad(bool set_to_none = false);

  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  void add_param_group(ParamGroup group);
  std::vector<Tensor> parameters() const;  // all groups, in order

  // lr used by step() for group g = groups()[g].lr * multiplier. An LrSchedule sets it.
  void set_lr_multiplier(double multiplier);
  double lr_multiplier() const { return lr_multiplier_; }
  double lr(size_t group_index) const;
  int64_t step_count() const { return step_count_; }  // calls to step()

  virtual std::string name() const = 0;  // "sgd", "adam", "adamw"

  // Keys (g = group index, i = parameter index within the group):
  //   strings "type";  scalars "step", "lr_multiplier", "num_groups", "group.g.num_params",
  //   "group.g.lr" (effective lr at save time, informational), "group.g.param.i.step";
  //   tensors "group.g.param.i.<buffer>" (buffer_names(): momentum_buffer | exp_avg, exp_avg_sq).
  // Tensors are copies: later steps do not change a saved StateDict.
  virtual StateDict state_dict() const;
  // Restores step counters, the lr multiplier and every per-parameter buffer. Hyperparameters
  // (lr, decay, clamps) stay as constructed. Validates everything before changing anything and
  // throws lowbit::Error naming the key on a wrong type, group/param count, shape or missing
  // buffer, or on an unexpected key.
  virtual void load_state_dict(const StateDict& state);

 protected:
  struct ParamState {
    int64_t step = 0;              // updates this parameter has received
    std::vector<Tensor> buffers;   // one per buffer_names(), undefined until first needed
  };

  explicit Optimizer(std::vector<ParamGroup> groups);

  // Buffers a parameter's state holds once it has been stepped (used by the checkpoint code).
  virtual std::vector<std::string> buffer_names() const = 0;
  // Apply the update rule to one parameter. state.step has already been incremented.
  virtual void update_param(const ParamGroup& group, double lr, Tensor& param, const Tensor& grad,
                            ParamState& state) = 0;

  // Runs body(begin, end) over [0, n): one call for small tensors, TBB chunks above 1M
  // elements. Element-wise updates are therefore independent of the thread count.
  static void for_chunks(int64_t n, const std::function<void(int64_t, int64_t)>& body);

 private:
  void validate_group(const ParamGroup& group, size_t index) const;
  void sync_state();

  std::vector<ParamGroup> groups_;
  std::vector<std::vector<ParamState>> state_;  // [group][param]
  double lr_multiplier_ = 1.0;
  int64_t step_count_ = 0;
};

}  // namespace lowbit
