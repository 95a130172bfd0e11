// ops_norm.h: batch normalization over (N, H, W) per channel of an NCHW (or [N, C]) tensor.
// Training: mean/var from the batch (biased var for normalising), running stats updated in
// place: running = (1 - momentum)*running + momentum*batch_stat (unbiased var), as PyTorch.
// Eval: running stats. y = (x - mean)/sqrt(var + eps) * gamma + beta.
// Backward (training): with xh = (x - mean)*invstd and M = N*H*W,
//   dbeta = sum g, dgamma = sum g*xh, dx = gamma*invstd/M * (M*g - dbeta - xh*dgamma).
// fused_relu: y = max(0, bn(x)) in the same pass; backward masks g where bn(x) <= 0 (recomputed
// from x, nothing extra saved). Saves two full passes over the activations per layer.
// Optional batch-sum hook lets distributed training reduce the per-channel sums across ranks
// (sync BN) before the statistics are formed.
#pragma once
#include <functional>

#include "core/tensor.h"

namespace lowbit {

struct BatchNormOptions {
  bool training = true;
  float momentum = 0.1f;
  float eps = 1e-5f;
  bool fused_relu = false;
  // Called with [sum(x) per channel (C), sum(x^2) per channel (C), count] in doubles before the
  // statistics are formed, and with [sum(g), sum(g*xh)] (2C) in backward; may replace them by
  // global sums (sync BN). Empty: local statistics.
  std::function<void(std::vector<double>& sums, double& count)> reduce_forward;
  std::function<void(std::vector<double>& sums)> reduce_backward;
};

// gamma, beta: [C] (may be undefined: 1 and 0). running_mean/var: [C] buffers (updated when training).
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor running_mean,
                  Tensor running_var, const BatchNormOptions& opt);

}  // namespace lowbit
