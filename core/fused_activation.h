// fused_activation.h: FusedActivation, an elementwise activation that the op before it applies in
// its own passes, y = act(v), so v never goes to memory: batch_norm (core/ops_norm.h) and the
// residual join add_activation (core/ops_elementwise.h) take one. ReLU is the built-in case; an
// activation quantizer (PACT) supplies span functions and its learned parameter.
#pragma once
#include <cstdint>
#include <functional>

#include "core/tensor.h"

namespace lowbit {

// relu: max(v, 0) by the op's own loops (forward, backward and param unused). Otherwise
// forward(v, y, n) writes y = act(v) (y may be v); backward(v, g, dv, n) writes dv = g * act'(v)
// and returns these n values' share of the gradient of `param` (its learned value, [1]; undefined
// when it has none). The ops add the shares per image chunk in a fixed order, round them to float
// and sum the chunks by the batch tree (core/deterministic_sum.h), so the gradient is thread- and
// rank-split-invariant.
struct FusedActivation {
  bool relu = false;
  std::function<void(const float* v, float* y, int64_t n)> forward;
  std::function<double(const float* v, const float* g, float* dv, int64_t n)> backward;
  Tensor param;
};

}  // namespace lowbit
