// convnet.cpp: the small CNN lowbit's comparisons use, and the MLP.
#include "core/error.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/registry.h"

namespace lowbit {

std::shared_ptr<Module> make_convnet(const ModelConfig& c, Generator& gen) {
  auto net = std::make_shared<Sequential>();
  int64_t channels = c.in_channels, h = c.height, w = c.width;
  for (int64_t out : {32, 64, 128}) {
    net->add(std::make_shared<Conv2d>(Conv2dConfig{channels, out, 3, 1, 1}, gen));
    net->add(std::make_shared<BatchNorm2d>(out, 1e-5f, 0.1f, /*fused_relu=*/true));  // BN + ReLU, one pass
    net->add(std::make_shared<MaxPool2d>(2));
    channels = out;
    h /= 2;
    w /= 2;
  }
  LOWBIT_CHECK(h > 0 && w > 0, "convnet needs inputs of at least 8x8, got ", c.height, "x", c.width);
  net->add(std::make_shared<Flatten>());
  net->add(std::make_shared<Linear>(channels * h * w, c.num_classes, gen));
  return net;
}

std::shared_ptr<Module> make_mlp(const ModelConfig& c, Generator& gen) {
  auto net = std::make_shared<Sequential>();
  net->add(std::make_shared<Flatten>());
  net->add(std::make_shared<Linear>(c.in_channels * c.height * c.width, 256, gen));
  net->add(std::make_shared<ReLU>());
  net->add(std::make_shared<Linear>(256, 256, gen));
  net->add(std::make_shared<ReLU>());
  net->add(std::make_shared<Linear>(256, c.num_classes, gen));
  return net;
}

}  // namespace lowbit
