// registry.h: the model zoo by name. Every model adapts to the input's channels and size and
// to the class count:
//   mlp       flatten, 256-ReLU-256-ReLU, linear to classes
//   convnet   [conv3x3(C->32)+BN+ReLU, maxpool2] x (32, 64, 128), flatten, linear (no conv bias);
//             BN and ReLU are one fused BatchNorm2d module (children 0..2: conv, bn+relu, pool)
//   resnet20/32/56   CIFAR-style ResNet (16-32-64, (depth-2)/6 BasicBlocks per stage)
//   resnet18  ImageNet-style ResNet (7x7/2 stem + maxpool, 64-128-256-512, 2 blocks each)
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/random.h"
#include "layers/module.h"

namespace lowbit {

struct ModelConfig {
  int64_t in_channels = 1, height = 28, width = 28, num_classes = 10;
};

// The zoo model `name`, its initialisation drawn from `gen` (layer by layer, in order): the same
// seed gives the same model.
std::shared_ptr<Module> make_model(const std::string& name, const ModelConfig& config, Generator& gen);
std::vector<std::string> model_names();

std::shared_ptr<Module> make_mlp(const ModelConfig& config, Generator& gen);
std::shared_ptr<Module> make_convnet(const ModelConfig& config, Generator& gen);
std::shared_ptr<Module> make_cifar_resnet(int depth, const ModelConfig& config, Generator& gen);
std::shared_ptr<Module> make_resnet18(const ModelConfig& config, Generator& gen);

}  // namespace lowbit
