// optimizer.cpp: parameter groups, the step loop (skip / clamp / hook), zero_grad and the
// optimizer checkpoint format shared by SGD, Adam and AdamW.
#include "optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_set>

#include "core/error.h"
#include "core/threading.h"

namespace lowbit {

namespace {

// Above this many elements an update is split over TBB; below it the thread hand-off costs
// more than the (memory-bound) loop.
constexpr int64_t kParallelThreshold = int64_t{1} << 20;
constexpr int64_t kParallelGrain = int64_t{1} << 18;

std::string param_key(size_t g, size_t i) {
  return "group." + std::to_string(g) + ".param." + std::to_string(i);
}

void clamp_values(float* __restrict p, int64_t n, float lo, float hi) {
  for (int64_t k = 0; k < n; ++k) p[k] = std::min(std::max(p[k], lo), hi);
}

}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups) {
  for (auto& g : groups) add_param_group(std::move(g));
}

Optimizer::~Optimizer() = default;

void Optimizer::validate_group(const ParamGroup& group, size_t index) const {
  const std::string what = "optimizer param group " + std::to_string(index) +
                           (group.name.empty() ? "" : " ('" + group.name + "')");
  LOWBIT_CHECK(std::isfinite(group.lr) && group.lr >= 0, what, ": lr must be finite and >= 0, got ",
               group.lr);
  LOWBIT_CHECK(std::isfinite(group.weight_decay) && group.weight_decay >= 0, what,
               ": weight_decay must be finite and >= 0, got ", group.weight_decay);
  LOWBIT_CHECK(std::isfinite(group.grad_scale), what, ": grad_scale must be finite, got ",
               group.grad_scale);
  LOWBIT_CHECK(!std::isnan(group.min_value) && !std::isnan(group.max_value) &&
                   group.min_value <= group.max_value,
               what, ": needs min_value <= max_value, got ", group.min_value, " and ",
               group.max_value);
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& g : groups_)
    for (const auto& p : g.params) seen.insert(p.impl());
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    LOWBIT_CHECK(p.defined(), what, ": parameter ", i, " is an undefined tensor");
    LOWBIT_CHECK(seen.insert(p.impl()).second, what, ": parameter ", i,
                 " appears more than once across the optimizer's groups");
  }
}

void Optimizer::add_param_group(ParamGroup group) {
  validate_group(group, groups_.size());
  state_.emplace_back(group.params.size());
  groups_.push_back(std::move(group));
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> out;
  for (const auto& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

void Optimizer::set_lr_multiplier(double multiplier) {
  LOWBIT_CHECK(std::isfinite(multiplier) && multiplier >= 0,
               "lr multiplier must be finite and >= 0, got ", multiplier);
  lr_multiplier_ = multiplier;
}

double Optimizer::lr(size_t group_index) const {
  LOWBIT_CHECK(group_index < groups_.size(), "optimizer has ", groups_.size(),
               " param groups, asked for the lr of group ", group_index);
  return groups_[group_index].lr * lr_multiplier_;
}

// groups() is mutable, so a caller may have appended parameters since the last step.
void Optimizer::sync_state() {
  state_.resize(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) state_[g].resize(groups_[g].params.size());
}

void Optimizer::step() {
  sync_state();
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    const double lr_eff = lr(g);
    const bool clamp = group.min_value > -std::numeric_limits<double>::infinity() ||
                       group.max_value < std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < group.params.size(); ++i) {
      Tensor& p = group.params[i];
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      LOWBIT_CHECK(grad.numel() == p.numel(), "optimizer: gradient of ", param_key(g, i), " has ",
                   grad.numel(), " elements, the parameter has ", p.numel());
      ParamState& st = state_[g][i];
      st.buffers.resize(buffer_names().size());
      ++st.step;
      update_param(group, lr_eff, p, grad, st);
      if (clamp) {
        const float lo = static_cast<float>(group.min_value);
        const float hi = static_cast<float>(group.max_value);
        float* data = p.data();
        for_chunks(p.numel(), [&](int64_t b, int64_t e) { clamp_values(data + b, e - b, lo, hi); });
      }
    }
    if (group.post_step) group.post_step(group);
  }
  ++step_count_;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (auto& g : groups_)
    for (auto& p : g.params) {
      if (set_to_none)
        p.set_grad(Tensor());
      else
        p.zero_grad();
    }
}

void Optimizer::for_chunks(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= kParallelThreshold) {
    body(0, n);
    return;
  }
  parallel_for(0, n, kParallelGrain, body);
}

StateDict Optimizer::state_dict() const {
  StateDict sd;
  sd.strings["type"] = name();
  sd.scalars["step"] = static_cast<double>(step_count_);
  sd.scalars["lr_multiplier"] = lr_multiplier_;
  sd.scalars["num_groups"] = static_cast<double>(groups_.size());
  const auto names = buffer_names();
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string gk = "group." + std::to_string(g);
    sd.scalars[gk + ".num_params"] = static_cast<double>(groups_[g].params.size());
    sd.scalars[gk + ".lr"] = lr(g);
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      if (g >= state_.size() || i >= state_[g].size() || state_[g][i].step == 0) continue;
      const ParamState& st = state_[g][i];
      const std::string pk = param_key(g, i);
      sd.scalars[pk + ".step"] = static_cast<double>(st.step);
      for (size_t b = 0; b < names.size() && b < st.buffers.size(); ++b)
        if (st.buffers[b].defined()) sd.tensors[pk + "." + names[b]] = st.buffers[b].clone();
    }
  }
  return sd;
}

void Optimizer::load_state_dict(const StateDict& sd) {
  const std::string where = "optimizer state_dict (" + name() + "): ";
  auto scalar = [&](const std::string& key) -> double {
    auto it = sd.scalars.find(key);
    LOWBIT_CHECK(it != sd.scalars.end(), where, "missing key '", key, "'");
    return it->second;
  };
  auto count = [&](const std::string& key) -> int64_t {
    const double v = scalar(key);
    LOWBIT_CHECK(std::isfinite(v) && v >= 0 && v == std::floor(v) && v < 9007199254740992.0, where,
                 "key '", key, "' must be a non-negative integer, got ", v);
    return static_cast<int64_t>(v);
  };

  auto type_it = sd.strings.find("type");
  LOWBIT_CHECK(type_it != sd.strings.end(), where, "missing key 'type'");
  LOWBIT_CHECK(type_it->second == name(), where, "key 'type' is '", type_it->second,
               "', expected '", name(), "'");
  const int64_t step_count = count("step");
  const double multiplier = scalar("lr_multiplier");
  LOWBIT_CHECK(std::isfinite(multiplier) && multiplier >= 0, where,
               "key 'lr_multiplier' must be finite and >= 0, got ", multiplier);
  const int64_t num_groups = count("num_groups");
  LOWBIT_CHECK(num_groups == static_cast<int64_t>(groups_.size()), where, "key 'num_groups' is ",
               num_groups, ", this optimizer has ", groups_.size(), " param groups");

  std::set<std::string> used_scalars = {"step", "lr_multiplier", "num_groups"};
  std::set<std::string> used_tensors;
  const auto names = buffer_names();
  std::vector<std::vector<ParamState>> next(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string gk = "group." + std::to_string(g);
    const int64_t np = count(gk + ".num_params");
    LOWBIT_CHECK(np == static_cast<int64_t>(groups_[g].params.size()), where, "key '", gk,
                 ".num_params' is ", np, ", group ", g, " has ", groups_[g].params.size(),
                 " parameters");
    used_scalars.insert(gk + ".num_params");
    used_scalars.insert(gk + ".lr");
    next[g].resize(groups_[g].params.size());
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const std::string pk = param_key(g, i);
      ParamState& st = next[g][i];
      if (!sd.scalars.count(pk + ".step")) continue;  // never stepped: fresh state
      used_scalars.insert(pk + ".step");
      st.step = count(pk + ".step");
      if (st.step == 0) continue;
      st.buffers.resize(names.size());
      const Shape& want = groups_[g].params[i].shape();
      for (size_t b = 0; b < names.size(); ++b) {
        const std::string key = pk + "." + names[b];
        auto it = sd.tensors.find(key);
        LOWBIT_CHECK(it != sd.tensors.end() && it->second.defined(), where, "missing key '", key,
                     "' (parameter ", i, " of group ", g, " has been stepped)");
        LOWBIT_CHECK(it->second.shape() == want, where, "key '", key, "' has shape ",
                     to_string(it->second.shape()), ", expected ", to_string(want),
                     " (the parameter's shape)");
        used_tensors.insert(key);
        st.buffers[b] = it->second.clone();
      }
    }
  }
  for (const auto& [key, v] : sd.tensors)
    LOWBIT_CHECK(used_tensors.count(key), where, "unexpected key '", key, "'");
  for (const auto& [key, v] : sd.scalars)
    LOWBIT_CHECK(used_scalars.count(key), where, "unexpected key '", key, "'");
  for (const auto& [key, v] : sd.strings)
    LOWBIT_CHECK(key == "type", where, "unexpected key '", key, "'");

  state_ = std::move(next);
  step_count_ = step_count;
  lr_multiplier_ = multiplier;
}

}  // namespace lowbit
