// residual.h: BasicBlock, the two-conv residual block of ResNet (He et al. 2016):
//   y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
// conv1 3x3 stride s, conv2 3x3 stride 1, no biases; shortcut = identity when shapes match,
// else a 1x1 conv (stride s) + BatchNorm (option B). Members are typed shared_ptrs so a
// converter can swap Conv2d for a subclass (e.g. QuantConv2d) with replace_child. Its layer-type
// row writes {"in_channels", "out_channels", "stride"}; its children (whatever now fills the
// slots) are written and rebuilt like any module's, then put back with replace_child.
#pragma once
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"

namespace lowbit {

class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "BasicBlock"; }
  std::string describe() const override;

  const int64_t in_channels, out_channels, stride;
  std::shared_ptr<Conv2d> conv1, conv2, shortcut_conv;
  std::shared_ptr<BatchNorm2d> bn1, bn2, shortcut_bn;
  std::shared_ptr<Module> relu1, relu2;  // ReLU, or an activation quantizer after conversion
};

LayerType basic_block_layer_type();

}  // namespace lowbit
