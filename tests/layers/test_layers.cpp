// test_layers.cpp: one generic test over every module factory of the library (dlib's test_layer):
// each activation, pooling, Flatten, Identity, Dropout, Conv2d, Linear, BatchNorm2d (train and
// eval), BasicBlock, Sequential, and QuantConv2d / QuantLinear with every registered quantizer
// method (quantizer_methods(), not a hand-written list), on odd shapes (channels that are not a
// multiple of 16, 1x1 images, stride 2 on odd sizes). For each case:
//   * gradient: smooth modules against central differences over the input and every parameter
//     (tests/common/gradcheck.h); Dropout in training mode against its rule dx = dy * mask / (1-p);
//     quantized layers against the chain rule of the STE: the layer's gradients equal the float
//     op's gradients at (Qa(x), Qw(W)) (the float op's own case checks those numerically) sent
//     back through the quantizers' own STE backward (each method's STE rule is checked against
//     the documented rule in tests/quant), and the forward equals op(Qa(x), Qw(W));
//   * accumulation: every gradient (input and parameters) pre-filled with noise, backward, noise
//     subtracted: equals the clean gradient (backward adds, never overwrites);
//   * state dict: another instance (another init) loads it and gives the same output bit for bit,
//     also through a file;
//   * config: rebuilt from its architecture (layers/layer_config.h, quant/layer_types.h), the
//     state dict loaded: the same architecture and the same output bit for bit;
//   * export: a tiny model around it goes through convert_to_int and its integer logits track the
//     fake-quant ones, or the converter refuses with an error naming what it cannot convert.
// Then Module basics: Sequential, state_dict strict errors, the reassigned-parameter footgun,
// random streams, and the layer-type table's errors.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "common/gradcheck.h"
#include "common/temp_dir.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops_conv.h"
#include "core/ops_matmul.h"
#include "core/serialize.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/layer_config.h"
#include "layers/linear.h"
#include "layers/residual.h"
#include "layers/sequential.h"
#include "models/checkpoint.h"
#include "quant/export/compare.h"
#include "quant/export/convert.h"
#include "quant/layer_types.h"
#include "quant/policy.h"
#include "quant/quant_layers.h"
#include "quant/registry.h"

using namespace lowbit;
using lowbit::testing::GradcheckOptions;
using lowbit::testing::random_away_from;

namespace {

enum class GradRule { central, dropout, quant_chain };
enum class Export { works, refused };

struct LayerCase {
  std::string name;
  std::function<std::shared_ptr<Module>(Generator&)> make;
  Shape input;
  bool training = true;
  GradRule grad = GradRule::central;
  std::vector<float> kinks = {};  // input values the central differences keep away from
  bool distinct_inputs = false;  // max pooling: no ties within a step
  float step = 1e-2f;
  Export exports = Export::works;
  std::string refusal = {};  // Export::refused: what the error names
  // Before the central differences: make the module smooth where internal kinks (a ReLU between
  // layers) would fall within a step of some input (their own cases check those modules).
  std::function<void(Module&)> smooth = {};
};

// BasicBlock with Identity in its ReLU slots: conv, BN, shortcut and join wiring, no kinks.
void block_without_relus(Module& m) {
  m.replace_child("relu1", std::make_shared<Identity>());
  m.replace_child("relu2", std::make_shared<Identity>());
}

template <class M, class... A>
std::function<std::shared_ptr<Module>(Generator&)> plain(A... args) {
  return [=](Generator&) { return std::static_pointer_cast<Module>(std::make_shared<M>(args...)); };
}

std::vector<LayerCase> float_cases() {
  std::vector<LayerCase> c;
  c.push_back({"ReLU", plain<ReLU>(), {2, 3, 4, 5}, true, GradRule::central, {0.f}});
  c.push_back({"Identity", plain<Identity>(), {2, 3, 2, 2}});
  c.push_back({"Flatten", plain<Flatten>(), {2, 3, 1, 5}});
  c.push_back({"GlobalAvgPool2d 3x5", plain<GlobalAvgPool2d>(), {2, 5, 3, 5}});
  c.push_back({"MaxPool2d 3 stride 2 pad 1 on 7x7", plain<MaxPool2d>(int64_t{3}, int64_t{2}, int64_t{1}), {2, 3, 7, 7},
               true, GradRule::central, {}, true});
  c.push_back({"MaxPool2d 2 on 5x5", plain<MaxPool2d>(int64_t{2}, int64_t{0}, int64_t{0}), {1, 3, 5, 5}, true,
               GradRule::central, {}, true});
  LayerCase avg{"AvgPool2d 2 on 5x5", plain<AvgPool2d>(int64_t{2}, int64_t{0}, int64_t{0}), {2, 3, 5, 5}};
  avg.exports = Export::refused;
  avg.refusal = "AvgPool2d";
  c.push_back(avg);
  c.push_back({"Dropout 0.3 eval", [](Generator& g) { return std::static_pointer_cast<Module>(std::make_shared<Dropout>(0.3f, g)); },
               {2, 3, 3, 3}, false});
  c.push_back({"Dropout 0.3 train", [](Generator& g) { return std::static_pointer_cast<Module>(std::make_shared<Dropout>(0.3f, g)); },
               {2, 3, 3, 3}, true, GradRule::dropout});
  auto conv = [](Conv2dConfig cfg) {
    return [cfg](Generator& g) { return std::static_pointer_cast<Module>(std::make_shared<Conv2d>(cfg, g)); };
  };
  c.push_back({"Conv2d 3->5 3x3 stride 2 pad 1 on 7x9",
               conv({.in_channels = 3, .out_channels = 5, .kernel = 3, .stride = 2, .padding = 1}), {2, 3, 7, 9}});
  c.push_back({"Conv2d 5->17 1x1 bias on 1x1", conv({.in_channels = 5, .out_channels = 17, .kernel = 1, .bias = true}),
               {3, 5, 1, 1}});
  LayerCase grouped{"Conv2d 4->6 3x3 groups 2 dilation 2 pad 2 on 5x5",
                    conv({.in_channels = 4, .out_channels = 6, .kernel = 3, .padding = 2, .dilation = 2, .groups = 2}),
                    {2, 4, 5, 5}};
  grouped.exports = Export::refused;
  grouped.refusal = "uses groups/dilation, which the integer runtime does not support";
  c.push_back(grouped);
  c.push_back({"Linear 7->5", [](Generator& g) { return std::static_pointer_cast<Module>(std::make_shared<Linear>(7, 5, g)); },
               {3, 7}});
  c.push_back({"Linear 1->3 no bias",
               [](Generator& g) { return std::static_pointer_cast<Module>(std::make_shared<Linear>(1, 3, g, false)); }, {4, 1}});
  c.push_back({"BatchNorm2d 5 train on 3x3", plain<BatchNorm2d>(int64_t{5}, 1e-5f, 0.1f, false), {4, 5, 3, 3}});
  c.push_back({"BatchNorm2d 5 eval on 3x3", plain<BatchNorm2d>(int64_t{5}, 1e-5f, 0.1f, false), {4, 5, 3, 3}, false});
  c.push_back({"BatchNorm2d 3 fused ReLU eval", plain<BatchNorm2d>(int64_t{3}, 1e-5f, 0.1f, true), {2, 3, 2, 3}, false,
               GradRule::central, {}, false});
  LayerCase bn_flat{"BatchNorm2d 7 on [N, C]", plain<BatchNorm2d>(int64_t{7}, 1e-5f, 0.1f, false), {6, 7}};
  bn_flat.exports = Export::refused;  // in the tiny model a Flatten sits between the conv and it
  bn_flat.refusal = "must directly follow a quantized conv/linear";
  c.push_back(bn_flat);
  c.push_back({"BasicBlock 3->5 stride 2 on 7x7 eval",
               [](Generator& g) { return std::static_pointer_cast<Module>(std::make_shared<BasicBlock>(3, 5, 2, g)); },
               {2, 3, 7, 7}, false, GradRule::central, {}, false, 1e-2f, Export::works, "", block_without_relus});
  c.push_back({"BasicBlock 4->4 stride 1 on 3x3 train",
               [](Generator& g) { return std::static_pointer_cast<Module>(std::make_shared<BasicBlock>(4, 4, 1, g)); },
               {3, 4, 3, 3}, true, GradRule::central, {}, false, 1e-2f, Export::works, "", block_without_relus});
  c.push_back({"Sequential conv, BN+ReLU, maxpool, flatten, linear",
               [](Generator& g) {
                 auto s = std::make_shared<Sequential>();
                 s->add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = 2, .out_channels = 3, .kernel = 3, .padding = 1}, g));
                 s->add(std::make_shared<BatchNorm2d>(3));
                 s->add(std::make_shared<ReLU>());
                 s->add(std::make_shared<MaxPool2d>(2));
                 s->add(std::make_shared<Flatten>());
                 s->add(std::make_shared<Linear>(3 * 2 * 2, 4, g));
                 return std::static_pointer_cast<Module>(s);
               },
               {2, 2, 5, 5}, false, GradRule::central, {}, false, 1e-3f});
  return c;
}

// Every registered method on the side(s) it has, 2 bits.
std::vector<LayerCase> quant_cases() {
  std::vector<LayerCase> c;
  for (const QuantizerMethod& m : quantizer_methods()) {
    const std::string method = m.name;
    const bool w = static_cast<bool>(m.make_weight), a = static_cast<bool>(m.make_activation);
    auto quantizers = [=]() {
      return std::make_pair(w ? make_quantizer(method, QuantTarget::weight, 2) : nullptr,
                            a ? make_quantizer(method, QuantTarget::activation, 2) : nullptr);
    };
    LayerCase conv{"QuantConv2d " + method + " 3->5 3x3 stride 2 on 5x7",
                   [=](Generator& g) {
                     auto [wq, aq] = quantizers();
                     return std::static_pointer_cast<Module>(std::make_shared<QuantConv2d>(
                         Conv2dConfig{.in_channels = 3, .out_channels = 5, .kernel = 3, .stride = 2, .padding = 1}, wq, aq, g));
                   },
                   {2, 3, 5, 7}, true, GradRule::quant_chain};
    LayerCase lin{"QuantLinear " + method + " 6->3",
                  [=](Generator& g) {
                    auto [wq, aq] = quantizers();
                    return std::static_pointer_cast<Module>(std::make_shared<QuantLinear>(6, 3, true, wq, aq, g));
                  },
                  {4, 6}, true, GradRule::quant_chain};
    // A method with one side leaves the other float, which the integer runtime cannot run.
    for (LayerCase* lc : {&conv, &lin})
      if (!(w && a)) {
        lc->exports = Export::refused;
        lc->refusal = "is not quantized on both sides";
      }
    c.push_back(conv);
    c.push_back(lin);
  }
  return c;
}

Tensor case_input(const LayerCase& lc, Generator& gen) {
  if (!lc.distinct_inputs) return random_away_from(lc.input, gen, -1.5f, 1.5f, lc.kinks, 3 * lc.step);
  // A shuffled ramp with spacing 0.05: no two values of a pooling window within a step of each other.
  Tensor x = Tensor::empty(lc.input);
  const int64_t n = x.numel();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[static_cast<size_t>(i)], order[gen.below(static_cast<uint64_t>(i + 1))]);
  for (int64_t i = 0; i < n; ++i) x.data()[i] = 0.05f * static_cast<float>(order[static_cast<size_t>(i)] - n / 2);
  return x;
}

// The module with its data-driven quantizer inits done (one training forward) and in the case's mode.
std::shared_ptr<Module> make_ready(const LayerCase& lc, uint64_t seed, const Tensor& x) {
  Generator gen(seed);
  auto m = lc.make(gen);
  m->train();
  {
    NoGradGuard ng;
    m->forward(x);
  }
  m->train(lc.training);
  return m;
}

std::vector<Tensor> params_of(Module& m) { return m.parameters(); }

// forward + backward(r) from cleared (or `prefill`ed) gradients; returns every gradient (x first).
std::vector<Tensor> gradients(Module& m, Tensor x, const Tensor& r, const std::vector<Tensor>* prefill = nullptr) {
  std::vector<Tensor> leaves{x};
  for (auto& p : params_of(m)) leaves.push_back(p);
  x.set_requires_grad(true);
  for (size_t i = 0; i < leaves.size(); ++i) leaves[i].set_grad(prefill ? (*prefill)[i].clone() : Tensor());
  m.forward(x).backward(r);
  std::vector<Tensor> out;
  for (auto& l : leaves) out.push_back(l.grad().defined() ? l.grad().clone() : Tensor::zeros(l.shape()));
  return out;
}

RngStates streams(Module& m) { return rng_states(m); }

void check_close(const Tensor& a, const Tensor& b, double rel, const std::string& what) {
  REQUIRE(a.shape() == b.shape());
  double scale = 0, worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) scale = std::max(scale, static_cast<double>(std::fabs(b.data()[i])));
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(a.data()[i] - b.data()[i])));
  INFO(what, ": worst difference ", worst, " at scale ", scale);
  CHECK(worst <= rel * scale + 1e-6);
}

bool bit_equal(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && a.to_vector() == b.to_vector(); }

void check_gradient(const LayerCase& lc, Module& m, const Tensor& x0) {
  Generator gen(21);
  switch (lc.grad) {
    case GradRule::central: {
      if (lc.smooth) lc.smooth(m);
      std::vector<Tensor> inputs{x0.clone()};
      for (auto& p : params_of(m)) inputs.push_back(p);  // perturbed in place: the module sees them
      GradcheckOptions opt;
      opt.step = lc.step;
      lowbit::testing::check_gradients([&](const std::vector<Tensor>& in) { return m.forward(in[0]); }, inputs, opt);
      return;
    }
    case GradRule::dropout: {
      // y = x * mask / (1 - p): dL/dx = r where kept (scaled), 0 where dropped, i.e. dx * x == r * y.
      Tensor x = x0.clone();
      x.set_requires_grad(true);
      Tensor y = m.forward(x);
      const Tensor r = Tensor::randn(y.shape(), gen);
      y.backward(r);
      const float p = dynamic_cast<Dropout&>(m).p;
      int64_t dropped = 0;
      for (int64_t i = 0; i < x.numel(); ++i) {
        const float g = x.grad().data()[i], yi = y.data()[i];
        if (yi == 0.f) {
          ++dropped;
          CHECK(g == 0.f);
        } else {
          CHECK(g == doctest::Approx(r.data()[i] / (1.f - p)).epsilon(1e-6));
          CHECK(yi == doctest::Approx(x0.data()[i] / (1.f - p)).epsilon(1e-6));
        }
      }
      CHECK(dropped > 0);
      CHECK(dropped < x.numel());
      return;
    }
    case GradRule::quant_chain: {
      // The layer's own gradients.
      Quantizer *wq = nullptr, *aq = nullptr;
      Tensor weight, bias;
      bool is_conv = false;
      Conv2dOptions copt;
      if (auto* qc = dynamic_cast<QuantConv2d*>(&m)) {
        wq = qc->weight_quantizer.get(), aq = qc->act_quantizer.get(), weight = qc->weight, bias = qc->bias.tensor();
        is_conv = true;
        copt = qc->options();
      } else {
        auto& ql = dynamic_cast<QuantLinear&>(m);
        wq = ql.weight_quantizer.get(), aq = ql.act_quantizer.get(), weight = ql.weight, bias = ql.bias.tensor();
      }
      auto op = [&](const Tensor& xin, const Tensor& w, const Tensor& b) {
        return is_conv ? conv2d(xin, w, b, copt) : linear(xin, w, b);
      };
      m.zero_grad();
      Tensor x = x0.clone();
      x.set_requires_grad(true);
      Tensor y = m.forward(x);
      const Tensor r = Tensor::randn(y.shape(), gen);
      y.backward(r);
      std::vector<std::pair<std::string, Tensor>> layer_grads;
      for (auto& [n, p] : m.named_parameters()) layer_grads.emplace_back(n, p.grad().defined() ? p.grad().clone() : Tensor::zeros(p.shape()));
      const Tensor gx = x.grad().clone();
      // The float op at the quantized values: its forward is the layer's, its gradients G.
      Tensor xq, wqv;
      {
        NoGradGuard ng;
        xq = (aq ? aq->forward(x0) : x0).clone();
        wqv = (wq ? wq->forward(weight) : weight).clone();
      }
      Tensor xl = xq.clone(), wl = wqv.clone(), bl = bias.defined() ? bias.clone() : Tensor();
      xl.set_requires_grad(true);
      wl.set_requires_grad(true);
      if (bl.defined()) bl.set_requires_grad(true);
      Tensor y2 = op(xl, wl, bl);
      CHECK(bit_equal(y2, y));  // forward = op(Qa(x), Qw(W)) + b
      y2.backward(r);
      // G sent back through the quantizers alone (their STE backward).
      m.zero_grad();
      Tensor x2 = x0.clone();
      x2.set_requires_grad(true);
      if (aq) aq->forward(x2).backward(xl.grad());
      Tensor w2 = weight.detach().clone();
      w2.set_requires_grad(true);
      if (wq) wq->forward(w2).backward(wl.grad());
      check_close(gx, aq ? x2.grad() : xl.grad(), 1e-5, "input gradient");
      for (auto& [n, g] : layer_grads) {
        CAPTURE(n);
        Tensor ref;
        if (n == "weight") ref = wq ? w2.grad() : wl.grad();
        else if (n == "bias") ref = bl.grad();
        else {
          for (auto& [pn, p] : m.named_parameters())
            if (pn == n) ref = p.grad().defined() ? p.grad() : Tensor::zeros(p.shape());
        }
        REQUIRE(ref.defined());
        check_close(g, ref, 1e-5, n);
      }
      return;
    }
  }
}

void check_accumulates(const LayerCase& lc, Module& m, const Tensor& x0) {
  Generator gen(33);
  const RngStates start = streams(m);
  Tensor probe;
  {
    NoGradGuard ng;
    probe = m.forward(x0);
  }
  const Tensor r = Tensor::randn(probe.shape(), gen);
  set_rng_states(m, start, "the test");  // Dropout: the same mask for both passes
  const auto clean = gradients(m, x0.clone(), r);
  std::vector<Tensor> noise;
  for (auto& g : clean) noise.push_back(Tensor::randn(g.shape(), gen));
  set_rng_states(m, start, "the test");
  const auto noisy = gradients(m, x0.clone(), r, &noise);
  REQUIRE(noisy.size() == clean.size());
  for (size_t i = 0; i < clean.size(); ++i) {
    Tensor diff = Tensor::empty(noisy[i].shape());
    for (int64_t k = 0; k < diff.numel(); ++k) diff.data()[k] = noisy[i].data()[k] - noise[i].data()[k];
    check_close(diff, clean[i], 1e-5, "accumulated gradient " + std::to_string(i));
  }
  (void)lc;
}

void check_state_and_config(const LayerCase& lc, Module& m, const Tensor& x0) {
  m.eval();
  Tensor y;
  {
    NoGradGuard ng;
    y = m.forward(x0);
  }
  // State dict into another instance (another init), directly and through a file.
  Generator other(777);
  auto m2 = lc.make(other);
  m2->load_state_dict(m.state_dict());
  m2->eval();
  const auto path = (lowbit::testing::temp_dir("layers") / "m.ckpt").string();
  save_state_dict(path, m.state_dict());
  auto m3 = lc.make(other);
  m3->load_state_dict(load_state_dict_file(path));
  m3->eval();
  // The architecture, rebuilt.
  const auto& types = library_layer_types();
  const nlohmann::json cfg = module_config(m, types);
  CHECK_FALSE(undescribed_module(m, types).has_value());
  Generator rebuild(4242);
  auto m4 = module_from_config(cfg, types, rebuild);
  CHECK(module_config(*m4, types) == cfg);
  CHECK(m4->type_name() == m.type_name());
  m4->load_state_dict(m.state_dict());
  m4->eval();
  NoGradGuard ng;
  CHECK(bit_equal(m2->forward(x0), y));
  CHECK(bit_equal(m3->forward(x0), y));
  CHECK(bit_equal(m4->forward(x0), y));
  m.train(lc.training);
}

// A tiny model around the case's module for the converter, or nullptr. Float cases: an input
// conv and a final linear around it, converted W2A2 (pact-sawb); quantized cases: built quantized.
std::shared_ptr<Module> export_model_around(const LayerCase& lc, std::shared_ptr<Module> m, int64_t& classes, Shape& in) {
  classes = 3;
  Generator g(5);
  auto s = std::make_shared<Sequential>();
  const bool flat_input = lc.input.size() == 2;
  const int64_t c = lc.input[1];
  in = flat_input ? Shape{lc.input[0], c, 1, 1} : lc.input;
  const bool quantized = lc.grad == GradRule::quant_chain;
  if (quantized) {
    s->add(std::make_shared<QuantConv2d>(Conv2dConfig{.in_channels = c, .out_channels = c, .kernel = 1},
                                         make_quantizer("sawb", QuantTarget::weight, 8),
                                         make_quantizer("input", QuantTarget::activation, 8), g));
  } else {
    s->add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = c, .out_channels = c, .kernel = 1}, g));
  }
  if (flat_input) s->add(std::make_shared<Flatten>());
  s->add(m);
  Tensor probe;
  {
    NoGradGuard ng;
    s->eval();
    probe = s->forward(Tensor::zeros(in));
  }
  if (probe.dim() > 2) s->add(std::make_shared<Flatten>());
  const int64_t features = probe.numel() / probe.size(0);
  if (quantized)
    s->add(std::make_shared<QuantLinear>(features, classes, true, make_quantizer("sawb", QuantTarget::weight, 8),
                                         make_quantizer("pact", QuantTarget::activation, 8), g));
  else
    s->add(std::make_shared<Linear>(features, classes, g));
  if (!quantized) {
    QuantPolicy policy;
    policy.method = "pact-sawb";
    policy.wbits = policy.abits = 2;
    convert_model(*s, policy);
  }
  return s;
}

void check_export(const LayerCase& lc) {
  Generator gen(8);
  int64_t classes = 0;
  Shape in;
  auto model = export_model_around(lc, lc.make(gen), classes, in);
  const Tensor x = random_away_from(in, gen, -1.5f, 1.5f);
  model->train();
  {
    NoGradGuard ng;
    model->forward(x);  // quantizer inits
  }
  model->eval();
  intq::ExportInfo info;
  info.channels = in[1];
  info.height = in[2];
  info.width = in[3];
  info.mean.assign(static_cast<size_t>(in[1]), 0.f);
  info.std.assign(static_cast<size_t>(in[1]), 1.f);
  if (lc.exports == Export::refused) {
    try {
      intq::convert_to_int(*model, info);
      FAIL("expected the converter to refuse ", lc.refusal);
    } catch (const lowbit::Error& e) {
      CHECK(std::string(e.what()).find(lc.refusal) != std::string::npos);
    }
    return;
  }
  const intq::IntGraph graph = intq::convert_to_int(*model, info);
  CHECK(graph.num_classes() == classes);
  Tensor fake;
  {
    NoGradGuard ng;
    fake = model->forward(x);
  }
  const Tensor logits = intq::run_int_graph(graph, x);
  REQUIRE(logits.shape() == fake.shape());
  // Integer sums are exact but the rounding points differ from float fake-quant: close, not equal.
  check_close(logits, fake, 0.25, "integer vs fake-quant logits");
}

void run_case(const LayerCase& lc) {
  CAPTURE(lc.name);
  Generator gen(1);
  const Tensor x = case_input(lc, gen);
  auto m = make_ready(lc, 2, x);
  SUBCASE("gradient") { check_gradient(lc, *m, x); }
  SUBCASE("backward accumulates") { check_accumulates(lc, *m, x); }
  SUBCASE("state dict and config round trips") { check_state_and_config(lc, *m, x); }
  SUBCASE("export or a named refusal") { check_export(lc); }
}

}  // namespace

TEST_CASE("every float layer: gradient, accumulation, state dict, config, export") {
  for (const auto& lc : float_cases()) {
    DOCTEST_SUBCASE(lc.name.c_str()) { run_case(lc); }
  }
}

TEST_CASE("QuantConv2d and QuantLinear with every registered quantizer method") {
  const auto cases = quant_cases();
  CHECK(cases.size() == 2 * quantizer_methods().size());
  for (const auto& lc : cases) {
    DOCTEST_SUBCASE(lc.name.c_str()) { run_case(lc); }
  }
}
