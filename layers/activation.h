// activation.h: parameter-free layers: ReLU, Flatten, Dropout, Identity, MaxPool2d,
// AvgPool2d, GlobalAvgPool2d. Each is a thin Module over the op of the same name, and each has
// its row of the layer-type table (layers/layer_config.h), defined in activation.cpp.
// Dropout owns its random stream (seeded from the Generator it is built with), registered as
// "rng" so a training checkpoint saves it and resume restores it (Module::named_generators).
#pragma once
#include "core/random.h"
#include "layers/layer_config.h"
#include "layers/module.h"

namespace lowbit {

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "ReLU"; }
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x.flatten(1); }
  std::string type_name() const override { return "Flatten"; }
};

class Dropout : public Module {
 public:
  // p in [0, 1); the mask stream is seeded with one draw from `gen`.
  Dropout(float p, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  std::string describe() const override;
  const float p;

 private:
  Generator rng_;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0)
      : kernel(kernel), stride(stride > 0 ? stride : kernel), padding(padding) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "MaxPool2d"; }
  std::string describe() const override;
  const int64_t kernel, stride, padding;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0)
      : kernel(kernel), stride(stride > 0 ? stride : kernel), padding(padding) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AvgPool2d"; }
  std::string describe() const override;
  const int64_t kernel, stride, padding;
};

class GlobalAvgPool2d : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "GlobalAvgPool2d"; }
};

// Rows of the layer-type table: {} settings, except Dropout {"p"} and the pools {"kernel",
// "stride", "padding"}.
LayerType relu_layer_type();
LayerType identity_layer_type();
LayerType flatten_layer_type();
LayerType dropout_layer_type();
LayerType max_pool2d_layer_type();
LayerType avg_pool2d_layer_type();
LayerType global_avg_pool2d_layer_type();

}  // namespace lowbit
