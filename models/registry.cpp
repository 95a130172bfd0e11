// registry.cpp: model lookup by name.
#include "models/registry.h"

#include "core/error.h"

namespace lowbit {

std::vector<std::string> model_names() { return {"mlp", "convnet", "resnet20", "resnet32", "resnet56", "resnet18"}; }

std::shared_ptr<Module> make_model(const std::string& name, const ModelConfig& c, Generator& gen) {
  LOWBIT_CHECK(c.in_channels > 0 && c.height > 0 && c.width > 0 && c.num_classes > 1,
               "model '", name, "': invalid input ", c.in_channels, "x", c.height, "x", c.width, " or class count ",
               c.num_classes);
  if (name == "mlp") return make_mlp(c, gen);
  if (name == "convnet") return make_convnet(c, gen);
  if (name == "resnet20") return make_cifar_resnet(20, c, gen);
  if (name == "resnet32") return make_cifar_resnet(32, c, gen);
  if (name == "resnet56") return make_cifar_resnet(56, c, gen);
  if (name == "resnet18") return make_resnet18(c, gen);
  std::string known;
  for (auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown model '" + name + "' (known: " + known + ")");
}

}  // namespace lowbit
