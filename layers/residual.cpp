// residual.cpp: ResNet BasicBlock.
#include "layers/residual.h"

#include "core/error.h"
#include "core/ops_elementwise.h"

namespace lowbit {

BasicBlock::BasicBlock(int64_t in, int64_t out, int64_t s, Generator& gen)
    : in_channels(in), out_channels(out), stride(s) {
  LOWBIT_CHECK(in > 0 && out > 0 && s > 0, "BasicBlock: channels and stride must be positive, got ", in, " -> ", out,
               ", stride ", s);
  register_module("conv1", conv1, std::make_shared<Conv2d>(Conv2dConfig{in, out, 3, s, 1}, gen));
  register_module("bn1", bn1, std::make_shared<BatchNorm2d>(out));
  register_module("relu1", relu1, std::static_pointer_cast<Module>(std::make_shared<ReLU>()));
  register_module("conv2", conv2, std::make_shared<Conv2d>(Conv2dConfig{out, out, 3, 1, 1}, gen));
  register_module("bn2", bn2, std::make_shared<BatchNorm2d>(out));
  if (s != 1 || in != out) {
    register_module("shortcut_conv", shortcut_conv, std::make_shared<Conv2d>(Conv2dConfig{in, out, 1, s, 0}, gen));
    register_module("shortcut_bn", shortcut_bn, std::make_shared<BatchNorm2d>(out));
  }
  register_module("relu2", relu2, std::static_pointer_cast<Module>(std::make_shared<ReLU>()));
}

Tensor BasicBlock::forward(const Tensor& x) {
  // Plain ReLUs run fused: bn1 + relu1 in BatchNorm's pass, the join + relu2 as add_relu. An
  // activation quantizer in their place (after conversion) runs as its own module.
  const Tensor c1 = conv1->forward(x);
  const Tensor h = dynamic_cast<ReLU*>(relu1.get()) ? bn1->forward_relu(c1) : relu1->forward(bn1->forward(c1));
  Tensor y = bn2->forward(conv2->forward(h));
  Tensor skip = shortcut_conv ? shortcut_bn->forward(shortcut_conv->forward(x)) : x;
  return dynamic_cast<ReLU*>(relu2.get()) ? add_relu(y, skip) : relu2->forward(add(y, skip));
}

std::string BasicBlock::describe() const {
  return detail::concat("BasicBlock(", in_channels, " -> ", out_channels, ", stride ", stride, ")");
}

LayerType basic_block_layer_type() {
  return {"BasicBlock", &typeid(BasicBlock),
          [](const Module& m) {
            const auto& b = static_cast<const BasicBlock&>(m);
            return nlohmann::json{{"in_channels", b.in_channels}, {"out_channels", b.out_channels}, {"stride", b.stride}};
          },
          [](const nlohmann::json& c, const NamedModules& children, Generator& gen) {
            auto block = std::make_shared<BasicBlock>(config_int(c, "in_channels"), config_int(c, "out_channels"),
                                                      config_int(c, "stride"), gen);
            for (const auto& [name, child] : children) block->replace_child(name, child);
            return block;
          },
          nullptr,
          // The block's own convs and norms, built before its children replace them.
          [](const nlohmann::json& c) {
            const double in = static_cast<double>(config_int(c, "in_channels")),
                         out = static_cast<double>(config_int(c, "out_channels"));
            return 9 * in * out + 9 * out * out + 8 * out + in * out + 4 * out;
          }};
}

}  // namespace lowbit
