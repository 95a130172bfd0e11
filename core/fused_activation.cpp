// fused_activation.cpp: activation(x, act), the standalone op of a FusedActivation.
#include "core/fused_activation.h"

#include <algorithm>

#include "core/autograd.h"
#include "core/deterministic_sum.h"
#include "core/error.h"
#include "core/layout.h"
#include "core/threading.h"

namespace lowbit {

Tensor activation(const Tensor& x, const FusedActivation& act) {
  LOWBIT_CHECK(x.dim() >= 1, "activation: input needs a batch dimension, got ", to_string(x.shape()));
  constexpr int64_t kBlock = 1 << 15;
  Tensor y = Tensor::empty(x.shape(), x.layout());
  const float* px = x.raw_data();
  float* py = y.raw_data();
  const int64_t n = x.numel();
  parallel_for(0, (n + kBlock - 1) / kBlock, 1, [&](int64_t b0, int64_t b1) {
    act.forward(px + b0 * kBlock, py + b0 * kBlock, std::min(n, b1 * kBlock) - b0 * kBlock);
  });
  return record(y, "activation", {x, act.param}, [x = x.detach(), act](const Tensor& g_in) {
    const Tensor g = to_layout(g_in, x.layout());
    Tensor dx = Tensor::empty(x.shape(), x.layout());
    const float* px = x.raw_data();
    const float* pg = g.raw_data();
    float* pd = dx.raw_data();
    const auto share = batch_sum_elements<float>(x.numel(), x.size(0), 1, [&](int64_t i0, int64_t i1, float* acc) {
      acc[0] = static_cast<float>(act.backward(px + i0, pg + i0, pd + i0, i1 - i0));
    });
    return std::vector<Tensor>{dx, act.param.defined() ? Tensor::full({1}, share[0]) : Tensor()};
  });
}

}  // namespace lowbit
