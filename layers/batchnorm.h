// batchnorm.h: BatchNorm2d (also accepts [N, C]): learnable gamma ("weight") and beta ("bias"),
// running_mean/running_var buffers. Training uses batch statistics (see core/ops_norm.h), eval
// the running ones. A process-wide sync hook (set by distributed training with --sync-bn)
// reduces the per-channel sums across ranks.
#pragma once
#include <functional>

#include "core/ops_norm.h"
#include "layers/module.h"

namespace lowbit {

class BatchNorm2d : public Module {
 public:
  // fused_relu: the layer computes relu(bn(x)) in one pass (same result as BatchNorm2d + ReLU).
  explicit BatchNorm2d(int64_t channels, float eps = 1e-5f, float momentum = 0.1f, bool fused_relu = false);
  Tensor forward(const Tensor& x) override;
  Tensor forward_relu(const Tensor& x) override;  // relu(bn(x)) in the normalising pass
  std::string type_name() const override { return "BatchNorm2d"; }
  std::string describe() const override;

  // Sync BN for every BatchNorm2d in the process (empty: local statistics).
  static void set_sync(std::function<void(std::vector<double>&, double&)> reduce_forward,
                       std::function<void(std::vector<double>&)> reduce_backward);

  const int64_t channels;
  const float eps, momentum;
  const bool fused_relu;
  Parameter weight, bias, running_mean, running_var;

 private:
  Tensor run(const Tensor& x, bool with_relu);
};

}  // namespace lowbit
