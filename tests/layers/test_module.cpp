// test_module.cpp: Module basics: Sequential (order, names, fusion of a child with the ReLU after
// it), state_dict strict errors (missing, unexpected, wrong shape: one error, model untouched),
// the reassigned-parameter footgun (assignment keeps the registered tensor), random streams
// (a Dropout's, saved and restored by name), and the layer-type table's errors (unknown type,
// a subclass of a library class, a bad setting, a repeated row).
#include <doctest/doctest.h>

#include "core/error.h"
#include "core/ops_elementwise.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/layer_config.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/checkpoint.h"
#include "optim/sgd.h"
#include "quant/layer_types.h"

using namespace lowbit;

TEST_CASE("Sequential: children named 0, 1, ... in order; a child + ReLU equals the two applied apart") {
  Generator g(3);
  Sequential s;
  s.add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = 2, .out_channels = 3, .kernel = 3, .padding = 1}, g));
  s.add(std::make_shared<BatchNorm2d>(3));
  s.add(std::make_shared<ReLU>());
  s.add(std::make_shared<Flatten>());
  REQUIRE(s.size() == 4);
  const auto kids = s.children();
  REQUIRE(kids.size() == 4);
  for (size_t i = 0; i < kids.size(); ++i) CHECK(kids[i].first == std::to_string(i));
  CHECK(s.at(1)->type_name() == "BatchNorm2d");
  CHECK(s.named_parameters()[0].first == "0.weight");
  const Tensor x = Tensor::randn({2, 2, 4, 4}, g);
  s.eval();
  const Tensor fused = s.forward(x);
  const Tensor apart = s.at(3)->forward(relu(s.at(1)->forward(s.at(0)->forward(x))));
  CHECK(fused.to_vector() == apart.to_vector());
}

TEST_CASE("load_state_dict: strict errors name the entry; a failed load changes nothing") {
  Generator g(4);
  Linear a(3, 2, g), b(3, 2, g);
  const auto before = b.weight->to_vector();
  StateDict missing = a.state_dict();
  missing.tensors.erase("bias");
  CHECK_THROWS_WITH_AS(b.load_state_dict(missing), "state dict has no entry 'bias' (expected shape [2])", Error);
  StateDict extra = a.state_dict();
  extra.tensors["extra"] = Tensor::zeros({1});
  CHECK_THROWS_WITH_AS(b.load_state_dict(extra), "state dict entry 'extra' does not belong to this model", Error);
  StateDict wrong = a.state_dict();
  wrong.tensors["bias"] = Tensor::zeros({3});
  CHECK_THROWS_WITH_AS(b.load_state_dict(wrong), "state dict entry 'bias' has shape [3], the model expects [2]", Error);
  CHECK(b.weight->to_vector() == before);  // untouched by every failed load
  b.load_state_dict(missing, /*strict=*/false);
  CHECK(b.weight->to_vector() == a.weight->to_vector());
}

TEST_CASE("assigning to a Parameter keeps the registered tensor (no detached copy)") {
  Generator g(5);
  Linear fc(3, 2, g);
  const Tensor registered = fc.named_parameters()[0].second;
  SGD opt({{"weights", fc.parameters(), 0.1, 0.0}}, {});
  fc.weight = Tensor::ones({2, 3});  // same shape: copied in place
  CHECK(registered.same_storage(fc.weight.tensor()));
  CHECK(registered.to_vector() == std::vector<float>(6, 1.f));
  fc.weight = Tensor::full({4, 3}, 2.f);  // another shape: the same tensor re-pointed
  CHECK(fc.named_parameters()[0].second.shape() == Shape{4, 3});
  CHECK(registered.shape() == Shape{4, 3});  // every holder (the optimizer too) sees it
  CHECK(registered.data()[11] == 2.f);
  CHECK(opt.groups()[0].params[0].shape() == Shape{4, 3});
}

TEST_CASE("random streams: a Dropout owns one, named by its place; restored streams repeat the masks") {
  Generator g(6);
  Sequential s;
  s.add(std::make_shared<Dropout>(0.5f, g));
  s.add(std::make_shared<Identity>());
  s.add(std::make_shared<Dropout>(0.5f, g));
  const auto gens = s.named_generators();
  REQUIRE(gens.size() == 2);
  CHECK(gens[0].first == "0.rng");
  CHECK(gens[1].first == "2.rng");
  const Tensor x = Tensor::ones({64});
  const RngStates saved = rng_states(s);
  const auto first = s.forward(x).to_vector();
  CHECK(s.forward(x).to_vector() != first);  // the streams moved on
  set_rng_states(s, saved, "saved");
  CHECK(s.forward(x).to_vector() == first);
  RngStates partial = saved;
  partial.erase("2.rng");
  CHECK_THROWS_WITH_AS(set_rng_states(s, partial, "x.ckpt"),
                       "checkpoint x.ckpt lacks the random stream 'rng.2.rng' of the model (it was written by another "
                       "model or an older lowbit)",
                       Error);
  // Two models built in one process draw from their own generators only.
  Generator a(9), b(9);
  Linear la(4, 4, a);
  Linear other(4, 4, b);
  Linear lb(4, 4, a);
  Generator c(9);
  Linear lc(4, 4, c);
  CHECK(la.weight->to_vector() == other.weight->to_vector());
  CHECK(la.weight->to_vector() == lc.weight->to_vector());
  CHECK(lb.weight->to_vector() != la.weight->to_vector());
}

namespace {
class MyConv : public Conv2d {  // a program's subclass that keeps the library type name
 public:
  using Conv2d::Conv2d;
  Tensor forward(const Tensor& x) override { return relu(Conv2d::forward(x)); }
};
}  // namespace

TEST_CASE("layer-type table: unknown types, subclasses and bad settings are named errors") {
  const LayerTypes& types = library_layer_types();
  Generator g(7);
  // A subclass is not its base type: written without a config, refused on rebuild.
  Sequential s;
  s.add(std::make_shared<Flatten>());
  s.add(std::make_shared<MyConv>(Conv2dConfig{}, g));
  const auto bad = undescribed_module(s, types);
  REQUIRE(bad.has_value());
  CHECK(bad->first == "1");
  CHECK(bad->second == "Conv2d (a subclass)");
  const nlohmann::json cfg = module_config(s, types);
  CHECK_THROWS_WITH_AS(module_from_config(cfg, types, g),
                       doctest::Contains("model layer '1' has type 'Conv2d (a subclass)', which has no registered config"),
                       Error);
  // A bad setting names the layer, its type and the field.
  nlohmann::json conv = module_config(Conv2d(Conv2dConfig{.in_channels = 2, .out_channels = 3}, g), types);
  conv["config"].erase("kernel");
  CHECK_THROWS_WITH_AS(module_from_config(conv, types, g),
                       "the model's top module (Conv2d): layer config lacks 'kernel'", Error);
  conv["config"]["kernel"] = "three";
  CHECK_THROWS_WITH_AS(module_from_config(conv, types, g),
                       "the model's top module (Conv2d): layer config 'kernel' must be an integer, got \"three\"", Error);
  conv["config"]["kernel"] = 0;
  CHECK_THROWS_WITH_AS(module_from_config(conv, types, g), doctest::Contains("Conv2d: invalid configuration"), Error);
  // A quantizer of an unknown method names it.
  nlohmann::json q = {{"type", "Quantizer"},
                      {"config", {{"method", "nosuch"}, {"target", "weight"}, {"bits", 2}, {"options", nlohmann::json::object()}}}};
  CHECK_THROWS_WITH_AS(module_from_config(q, types, g), doctest::Contains("unknown quantizer method 'nosuch'"), Error);
  // The float table alone does not know the quantized layers (quant/ extends it).
  CHECK(float_layer_types().find("QuantConv2d") == nullptr);
  CHECK(types.find("QuantConv2d") != nullptr);
  CHECK_THROWS_WITH_AS(types.extended({conv2d_layer_type()}), "layer type 'Conv2d' is registered twice", Error);
}
