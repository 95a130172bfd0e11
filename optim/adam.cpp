// adam.cpp: the Adam / AdamW update loop (one vectorisable pass over p, grad, m, v).
#include "optim/adam.h"

#include <cmath>

#include "core/error.h"

namespace lowbit {

namespace {

struct AdamCoefs {
  float grad_scale, l2, decay_factor;  // decay_factor = 1 - lr*wd for AdamW, 1 for Adam
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float step_size, bc2_sqrt, eps;
};

void adam_kernel(float* __restrict p, const float* __restrict grad, float* __restrict m,
                 float* __restrict v, int64_t n, const AdamCoefs c) {
  for (int64_t k = 0; k < n; ++k) {
    const float pk = p[k] * c.decay_factor;
    const float g = c.grad_scale * grad[k] + c.l2 * pk;
    const float mk = c.beta1 * m[k] + c.one_minus_beta1 * g;
    const float vk = c.beta2 * v[k] + (c.one_minus_beta2 * g) * g;
    m[k] = mk;
    v[k] = vk;
    const float denom = std::sqrt(vk) / c.bc2_sqrt + c.eps;
    p[k] = pk - c.step_size * (mk / denom);
  }
}

}  // namespace

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options)
    : Adam(std::move(groups), options, false) {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options, bool decoupled_weight_decay)
    : Optimizer(std::move(groups)), options_(options), decoupled_(decoupled_weight_decay) {
  const char* who = decoupled_weight_decay ? "AdamW" : "Adam";
  LOWBIT_CHECK(options.beta1 >= 0 && options.beta1 < 1, who, ": beta1 must be in [0, 1), got ",
               options.beta1);
  LOWBIT_CHECK(options.beta2 >= 0 && options.beta2 < 1, who, ": beta2 must be in [0, 1), got ",
               options.beta2);
  LOWBIT_CHECK(std::isfinite(options.eps) && options.eps >= 0, who,
               ": eps must be finite and >= 0, got ", options.eps);
}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamOptions options)
    : Adam(std::move(groups), options, true) {}

std::vector<std::string> Adam::buffer_names() const { return {"exp_avg", "exp_avg_sq"}; }

void Adam::update_param(const ParamGroup& group, double lr, Tensor& param, const Tensor& grad,
                        ParamState& state) {
  for (auto& b : state.buffers)
    if (!b.defined()) b = Tensor::zeros(param.shape());
  const double t = static_cast<double>(state.step);
  AdamCoefs c{};
  c.grad_scale = static_cast<float>(group.grad_scale);
  c.l2 = decoupled_ ? 0.f : static_cast<float>(group.weight_decay);
  // Multiplying by exactly 1 leaves Adam's p bit-identical, so one loop serves both.
  c.decay_factor = decoupled_ ? static_cast<float>(1.0 - lr * group.weight_decay) : 1.f;
  c.beta1 = static_cast<float>(options_.beta1);
  c.one_minus_beta1 = static_cast<float>(1.0 - options_.beta1);
  c.beta2 = static_cast<float>(options_.beta2);
  c.one_minus_beta2 = static_cast<float>(1.0 - options_.beta2);
  c.step_size = static_cast<float>(lr / (1.0 - std::pow(options_.beta1, t)));
  c.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(options_.beta2, t)));
  c.eps = static_cast<float>(options_.eps);

  float* p = param.data();
  const float* g = grad.data();
  float* m = state.buffers[0].data();
  float* v = state.buffers[1].data();
  for_chunks(param.numel(),
             [&](int64_t b, int64_t e) { adam_kernel(p + b, g + b, m + b, v + b, e - b, c); });
}

}  // namespace lowbit
