// batchnorm.cpp: BatchNorm2d layer and its data-parallel hooks (sync-BN, per-epoch averaging).
#include "layers/batchnorm.h"

#include "core/comm.h"
#include "core/error.h"

namespace lowbit {

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
  if (Comm* c = sync_comm_) {
    opt.reduce_forward = [c](std::vector<double>& sums, double& count) {
      sums.push_back(count);  // one allreduce for [sum x (C), sum x^2 (C), count]
      c->allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
      count = sums.back();
      sums.pop_back();
    };
    opt.reduce_backward = [c](std::vector<double>& sums) {
      c->allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
    };
  }
  return batch_norm(x, weight, bias, running_mean, running_var, opt);
}

void BatchNorm2d::attach_replicas(const Replicas* replicas) {
  sync_comm_ = replicas && replicas->sync_batch_norm && replicas->comm.size() > 1 ? &replicas->comm : nullptr;
}

void BatchNorm2d::sync_statistics(Comm& comm) {
  if (sync_comm_ || comm.size() == 1) return;  // sync-BN: identical on every rank already
  std::vector<float> stats(running_mean->data(), running_mean->data() + channels);
  stats.insert(stats.end(), running_var->data(), running_var->data() + channels);
  comm.allreduce_sum(stats.data(), static_cast<int64_t>(stats.size()));
  const float ranks = static_cast<float>(comm.size());
  for (int64_t i = 0; i < channels; ++i) {
    running_mean->data()[i] = stats[static_cast<size_t>(i)] / ranks;
    running_var->data()[i] = stats[static_cast<size_t>(channels + i)] / ranks;
  }
}

std::string BatchNorm2d::describe() const {
  return detail::concat("BatchNorm2d(", channels, ")", fused_relu ? "+ReLU" : "");
}

LayerType batch_norm2d_layer_type() {
  return {"BatchNorm2d", &typeid(BatchNorm2d),
          [](const Module& m) {
            const auto& b = static_cast<const BatchNorm2d&>(m);
            return nlohmann::json{{"channels", b.channels}, {"eps", b.eps}, {"momentum", b.momentum},
                                  {"fused_relu", b.fused_relu}};
          },
          [](const nlohmann::json& c, const NamedModules&, Generator&) {
            return std::make_shared<BatchNorm2d>(config_int(c, "channels"), static_cast<float>(config_number(c, "eps")),
                                                 static_cast<float>(config_number(c, "momentum")),
                                                 config_bool(c, "fused_relu"));
          },
          nullptr, [](const nlohmann::json& c) { return 4.0 * static_cast<double>(config_int(c, "channels")); }};
}

}  // namespace lowbit
