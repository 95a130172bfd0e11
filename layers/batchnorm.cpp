// batchnorm.cpp: BatchNorm2d layer and the process-wide sync-BN hook.
#include "layers/batchnorm.h"

#include "core/error.h"

namespace lowbit {

namespace {
std::function<void(std::vector<double>&, double&)> g_sync_forward;
std::function<void(std::vector<double>&)> g_sync_backward;
}  // namespace

void BatchNorm2d::set_sync(std::function<void(std::vector<double>&, double&)> reduce_forward,
                           std::function<void(std::vector<double>&)> reduce_backward) {
  g_sync_forward = std::move(reduce_forward);
  g_sync_backward = std::move(reduce_backward);
}

BatchNorm2d::BatchNorm2d(int64_t c, float eps, float momentum, bool fused_relu)
    : channels(c), eps(eps), momentum(momentum), fused_relu(fused_relu) {
  LOWBIT_CHECK(c > 0, "BatchNorm2d: channels must be positive, got ", c);
  register_parameter("weight", weight, Tensor::ones({c}));
  register_parameter("bias", bias, Tensor::zeros({c}));
  register_buffer("running_mean", running_mean, Tensor::zeros({c}));
  register_buffer("running_var", running_var, Tensor::ones({c}));
}

Tensor BatchNorm2d::forward(const Tensor& x) { return run(x, fused_relu); }

Tensor BatchNorm2d::forward_relu(const Tensor& x) { return run(x, true); }  // relu(relu(v)) = relu(v)

Tensor BatchNorm2d::run(const Tensor& x, bool with_relu) {
  BatchNormOptions opt;
  opt.training = is_training();
  opt.momentum = momentum;
  opt.eps = eps;
  opt.fused_relu = with_relu;
  opt.reduce_forward = g_sync_forward;
  opt.reduce_backward = g_sync_backward;
  return batch_norm(x, weight, bias, running_mean, running_var, opt);
}

std::string BatchNorm2d::describe() const {
  return detail::concat("BatchNorm2d(", channels, ")", fused_relu ? "+ReLU" : "");
}

}  // namespace lowbit
