// resnet.cpp: CIFAR-style ResNet-20/32/56 and ImageNet-style ResNet-18.
#include "core/error.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/residual.h"
#include "layers/sequential.h"
#include "models/registry.h"

namespace lowbit {

namespace {
// One stage of `blocks` BasicBlocks; the first one changes width/stride.
std::shared_ptr<Sequential> stage(int64_t in, int64_t out, int64_t blocks, int64_t stride, Generator& gen) {
  auto s = std::make_shared<Sequential>();
  for (int64_t b = 0; b < blocks; ++b) s->add(std::make_shared<BasicBlock>(b == 0 ? in : out, out, b == 0 ? stride : 1, gen));
  return s;
}
}  // namespace

std::shared_ptr<Module> make_cifar_resnet(int depth, const ModelConfig& c, Generator& gen) {
  LOWBIT_CHECK(depth >= 8 && (depth - 2) % 6 == 0, "CIFAR ResNet depth must be 6n+2, got ", depth);
  const int64_t n = (depth - 2) / 6;
  auto net = std::make_shared<Sequential>();
  net->add(std::make_shared<Conv2d>(Conv2dConfig{c.in_channels, 16, 3, 1, 1}, gen));
  net->add(std::make_shared<BatchNorm2d>(16));
  net->add(std::make_shared<ReLU>());
  net->add(stage(16, 16, n, 1, gen));
  net->add(stage(16, 32, n, 2, gen));
  net->add(stage(32, 64, n, 2, gen));
  net->add(std::make_shared<GlobalAvgPool2d>());
  net->add(std::make_shared<Linear>(64, c.num_classes, gen));
  return net;
}

std::shared_ptr<Module> make_resnet18(const ModelConfig& c, Generator& gen) {
  auto net = std::make_shared<Sequential>();
  net->add(std::make_shared<Conv2d>(Conv2dConfig{c.in_channels, 64, 7, 2, 3}, gen));
  net->add(std::make_shared<BatchNorm2d>(64));
  net->add(std::make_shared<ReLU>());
  net->add(std::make_shared<MaxPool2d>(3, 2, 1));
  net->add(stage(64, 64, 2, 1, gen));
  net->add(stage(64, 128, 2, 2, gen));
  net->add(stage(128, 256, 2, 2, gen));
  net->add(stage(256, 512, 2, 2, gen));
  net->add(std::make_shared<GlobalAvgPool2d>());
  net->add(std::make_shared<Linear>(512, c.num_classes, gen));
  return net;
}

}  // namespace lowbit
