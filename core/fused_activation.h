// fused_activation.h: FusedActivation, an elementwise activation with one optional learned
// parameter, described by span functions so the op that consumes its output can apply it while
// the values are in cache: conv2d applies its input's activation while packing the input
// (core/ops_conv.h), which is how an activation quantizer (PACT) costs no pass of its own.
// activation(x, act) is the same thing as a standalone op.
#pragma once
#include <cstdint>
#include <functional>

#include "core/tensor.h"

namespace lowbit {

// forward(x, y, n): y = act(x) over n values (y may be x).
// backward(x, g, dx, n): dx = g * act'(x) over n values (dx never aliases x or g) and returns these
//   values' share of the gradient of `param` (in double).
// param: the learned value ([1]), or undefined. An op sums the shares per image chunk of the
//   batch in a fixed order, rounds each chunk to float and adds the chunks by the batch tree
//   (core/deterministic_sum.h), so the gradient is thread- and rank-split-invariant.
struct FusedActivation {
  std::function<void(const float* x, float* y, int64_t n)> forward;
  std::function<double(const float* x, const float* g, float* dx, int64_t n)> backward;
  Tensor param;
};

// act(x) for x [N, ...] (any layout, kept); its gradients for x and act.param.
Tensor activation(const Tensor& x, const FusedActivation& act);

}  // namespace lowbit
