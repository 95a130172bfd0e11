// batchnorm.h: BatchNorm2d (also accepts [N, C]): learnable gamma ("weight") and beta ("bias"),
// running_mean/running_var buffers. Training uses batch statistics (see core/ops_norm.h), eval
// the running ones. Under DataParallel (layers/data_parallel.h) with sync_batch_norm the layer
// allreduces its per-channel sums across the replicas (sync-BN); without it, sync_statistics()
// averages the per-rank running statistics once per epoch. Its layer-type row writes
// {"channels", "eps", "momentum", "fused_relu"}.
#pragma once
#include <functional>

#include "core/ops_norm.h"
#include "layers/layer_config.h"
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

  // This layer's replicas: sync-BN over replicas->comm when replicas->sync_batch_norm.
  void attach_replicas(const Replicas* replicas) override;
  // Per-rank statistics (no sync-BN): running_mean/var := their mean over the ranks.
  void sync_statistics(Comm& comm) override;

  const int64_t channels;
  const float eps, momentum;
  const bool fused_relu;
  Parameter weight, bias, running_mean, running_var;

 private:
  Tensor run(const Tensor& x, bool with_relu);
  Comm* sync_comm_ = nullptr;  // set: batch statistics over every rank of it (sync-BN)
};

LayerType batch_norm2d_layer_type();

}  // namespace lowbit
