// sgd.cpp: the SGD update loops. Each variant is its own branch-free loop over __restrict
// float pointers so the compiler vectorises it.
#include "optim/sgd.h"

#include <cmath>

#include "core/error.h"

namespace lowbit {

namespace {

// p -= lr * (gs*grad + wd*p)
void sgd_plain(float* __restrict p, const float* __restrict grad, int64_t n, float lr, float gs,
               float wd) {
  for (int64_t k = 0; k < n; ++k) {
    const float g = gs * grad[k] + wd * p[k];
    p[k] = p[k] - lr * g;
  }
}

// First momentum step: buf = g; g = nesterov ? g + m*buf : buf; p -= lr*g.
void sgd_momentum_first(float* __restrict p, const float* __restrict grad, float* __restrict buf,
                        int64_t n, float lr, float gs, float wd, float m, bool nesterov) {
  if (nesterov) {
    for (int64_t k = 0; k < n; ++k) {
      const float g = gs * grad[k] + wd * p[k];
      buf[k] = g;
      p[k] = p[k] - lr * (g + m * g);
    }
  } else {
    for (int64_t k = 0; k < n; ++k) {
      const float g = gs * grad[k] + wd * p[k];
      buf[k] = g;
      p[k] = p[k] - lr * g;
    }
  }
}

// buf = m*buf + (1-dampening)*g; g = nesterov ? g + m*buf : buf; p -= lr*g.
void sgd_momentum(float* __restrict p, const float* __restrict grad, float* __restrict buf,
                  int64_t n, float lr, float gs, float wd, float m, float one_minus_damp,
                  bool nesterov) {
  if (nesterov) {
    for (int64_t k = 0; k < n; ++k) {
      const float g = gs * grad[k] + wd * p[k];
      const float b = m * buf[k] + one_minus_damp * g;
      buf[k] = b;
      p[k] = p[k] - lr * (g + m * b);
    }
  } else {
    for (int64_t k = 0; k < n; ++k) {
      const float g = gs * grad[k] + wd * p[k];
      const float b = m * buf[k] + one_minus_damp * g;
      buf[k] = b;
      p[k] = p[k] - lr * b;
    }
  }
}

}  // namespace

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options)
    : Optimizer(std::move(groups)), options_(options) {
  LOWBIT_CHECK(std::isfinite(options.momentum) && options.momentum >= 0,
               "SGD: momentum must be finite and >= 0, got ", options.momentum);
  LOWBIT_CHECK(std::isfinite(options.dampening), "SGD: dampening must be finite, got ",
               options.dampening);
  LOWBIT_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
               "SGD: nesterov needs momentum > 0 and dampening = 0, got momentum ",
               options.momentum, " and dampening ", options.dampening);
}

std::vector<std::string> SGD::buffer_names() const {
  if (options_.momentum == 0) return {};
  return {"momentum_buffer"};
}

void SGD::update_param(const ParamGroup& group, double lr, Tensor& param, const Tensor& grad,
                       ParamState& state) {
  float* p = param.data();
  const float* g = grad.data();
  const float flr = static_cast<float>(lr);
  const float gs = static_cast<float>(group.grad_scale);
  const float wd = static_cast<float>(group.weight_decay);
  if (options_.momentum == 0) {
    for_chunks(param.numel(),
               [&](int64_t b, int64_t e) { sgd_plain(p + b, g + b, e - b, flr, gs, wd); });
    return;
  }
  const float m = static_cast<float>(options_.momentum);
  const bool nesterov = options_.nesterov;
  Tensor& buffer = state.buffers[0];
  if (!buffer.defined()) {
    buffer = Tensor::empty(param.shape());
    float* buf = buffer.data();
    for_chunks(param.numel(), [&](int64_t b, int64_t e) {
      sgd_momentum_first(p + b, g + b, buf + b, e - b, flr, gs, wd, m, nesterov);
    });
    return;
  }
  float* buf = buffer.data();
  const float one_minus_damp = static_cast<float>(1.0 - options_.dampening);
  for_chunks(param.numel(), [&](int64_t b, int64_t e) {
    sgd_momentum(p + b, g + b, buf + b, e - b, flr, gs, wd, m, one_minus_damp, nesterov);
  });
}

}  // namespace lowbit
