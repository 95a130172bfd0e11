// test_quant.cpp: the QAT library beyond the golden vectors: STE rules at the edges, finite
// differences of QIL's smooth interval gradients, codes/export mapping, the warm-up switch and
// statistics inits, calibration thresholds with known answers, conversion of convnet/resnet20
// (parameters, state_dict, policy JSON, bits table), parameter groups and their clamps, and the
// data-parallel deferral of weight quantizers' parameter gradients (one process's bits).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <string>

#include "core/autograd.h"
#include "core/comm.h"
#include "core/data/loader.h"
#include "core/data/synthetic.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/layout.h"
#include "core/ops_conv.h"
#include "core/ops_loss.h"
#include "core/random.h"
#include "core/serialize.h"
#include "models/registry.h"
#include "optim/make_optimizer.h"
#include "quant/calibrate.h"
#include "quant/clip_search.h"
#include "quant/dorefa.h"
#include "quant/input_quantizer.h"
#include "quant/lsq.h"
#include "common/isa_levels.h"
#include "quant/pact.h"
#include "quant/policy.h"
#include "quant/qil.h"
#include "quant/quant_layers.h"
#include "quant/registry.h"
#include "quant/sawb.h"
#include "models/param_groups.h"
#include "quant/training.h"
#include "layers/data_parallel.h"
#include "layers/sequential.h"

using namespace lowbit;

namespace {

Tensor vec(const std::vector<float>& v) { return Tensor::from_vector({static_cast<int64_t>(v.size())}, v); }
Tensor param(float v) {
  Tensor t = Tensor::full({1}, v);
  t.set_requires_grad(true);
  return t;
}
Tensor leaf(const std::vector<float>& v) {
  Tensor t = vec(v);
  t.set_requires_grad(true);
  return t;
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("PACT STE at the edges: x == alpha, x < 0, x == 0") {
  Tensor x = leaf({-0.5f, 0.f, 0.4f, 1.f, 1.5f});
  Tensor a = param(1.f);
  Tensor y = pact_quantize(x, a, 2);
  y.backward(vec({1, 2, 3, 4, 5}));
  CHECK(y.to_vector() == std::vector<float>{0.f, 0.f, 1.f / 3, 1.f, 1.f});
  // dy/dx = 1 on [0, alpha): x = 0 passes, x = alpha does not (it feeds alpha instead).
  CHECK(x.grad().to_vector() == std::vector<float>{0, 2, 3, 0, 0});
  CHECK(a.grad().item() == doctest::Approx(4 + 5));
  CHECK(error_of([&] { pact_quantize(x, param(0.f), 2); }).find("alpha must be positive") != std::string::npos);
}

namespace {
struct Restore {  // the ISA level a test changed, back at scope exit
  kernels::Isa saved = kernels::active_isa_level();
  ~Restore() { kernels::set_active_isa(saved); }
};
}  // namespace

TEST_CASE("PACT inside QuantConv2d runs in the convolution's passes: the same values and gradients") {
  // QuantConv2d passes an initialised PACT to conv2d as its input activation (applied while the
  // input is packed; its gradient while backward-data's result is in cache). Against the two ops
  // run apart: outputs, dx and dw bit for bit, alpha's gradient (the same terms, summed per image
  // instead of per chunk of images) to float rounding. Row-major (6 channels) and blocked (32)
  // inputs, stride 1 and 2, every ISA level, the scalar one taking activation() + im2col.
  Restore restore;
  for (kernels::Isa isa : {kernels::Isa::scalar, kernels::Isa::avx2, kernels::Isa::avx512}) {
    if (!kernels::isa_supported(isa)) continue;
    kernels::set_active_isa(isa);
    for (int64_t channels : {6, 32})
      for (int64_t stride : {1, 2}) {
        CAPTURE(kernels::isa_name(isa));
        CAPTURE(channels);
        CAPTURE(stride);
        Generator g(13);
        auto pact = std::make_shared<PactQuantizer>(2, PactInit::fixed, 1.25f);
        auto conv = std::make_shared<QuantConv2d>(Conv2dConfig{channels, 16, 3, stride, 1, 1, 1, true},
                                                  std::make_shared<SawbQuantizer>(2), pact, g);
        REQUIRE(pact->fused_activation().has_value());
        const int64_t ho = (7 + 2 - 3) / stride + 1, wo = (5 + 2 - 3) / stride + 1;
        const Tensor x0 = Tensor::randn({9, channels, 7, 5}, g), r = Tensor::randn({9, 16, ho, wo}, g);
        std::vector<std::vector<float>> out, dx, dw, dalpha;
        for (bool one_op : {false, true}) {
          conv->weight->set_grad(Tensor());
          pact->alpha->set_grad(Tensor());
          Tensor x = (channels % 16 == 0 ? to_layout(x0, Layout::nchw16c) : x0.clone()).detach();
          x.set_requires_grad(true);
          const Tensor y = one_op ? conv->forward(x)
                                  : conv2d(pact->forward(x), conv->quantized_weight(), conv->bias.tensor(), conv->options());
          REQUIRE(y.shape() == r.shape());
          CHECK(std::string(y.grad_fn()->op) == (one_op && isa != kernels::Isa::scalar ? "conv2d_act" : "conv2d"));
          y.backward(r);
          out.push_back(y.to_vector());
          dx.push_back(x.grad().to_vector());
          dw.push_back(conv->weight->grad().to_vector());
          dalpha.push_back(pact->alpha->grad().to_vector());
        }
        CHECK(out[1] == out[0]);
        CHECK(dx[1] == dx[0]);
        CHECK(dw[1] == dw[0]);
        CHECK(dalpha[0][0] != 0.f);
        CHECK(dalpha[1][0] == doctest::Approx(dalpha[0][0]).epsilon(1e-5));
      }
  }
  // Not yet initialised (or disabled, or observed): the quantizer runs as its own op.
  PactQuantizer fresh(2);
  CHECK_FALSE(fresh.fused_activation().has_value());
}

TEST_CASE("DoReFa STE: activations on [0, 1] closed, weights (1 - tanh^2) / max|tanh|") {
  Tensor x = leaf({-0.1f, 0.f, 0.5f, 1.f, 1.0001f});
  Tensor y = dorefa_act_quantize(x, 2);
  y.backward(Tensor::ones({5}));
  CHECK(x.grad().to_vector() == std::vector<float>{0, 1, 1, 1, 0});
  CHECK(y.to_vector()[2] == doctest::Approx(2.f / 3));  // round(1.5) = 2 (half to even)
  Tensor w = leaf({-2.f, -0.1f, 0.3f, 1.f});
  Tensor wq = dorefa_weight_quantize(w, 2);
  wq.backward(Tensor::ones({4}));
  const float m = std::tanh(2.f);
  for (int i = 0; i < 4; ++i) {
    const float t = std::tanh(w.data()[i]);
    CHECK(w.grad().data()[i] == doctest::Approx((1 - t * t) / m));
    // Levels (2k - n)/n: no zero level.
    CHECK(std::fabs(wq.data()[i]) >= 1.f / 3 - 1e-6f);
  }
}

TEST_CASE("SAWB: no gradient beyond the clip, alpha_w buffer, eval keeps the stored value") {
  SawbQuantizer q(2);
  Generator gen(3);
  Tensor w = Tensor::randn({256}, gen, 0.f, 0.1f);
  w.set_requires_grad(true);
  Tensor y = q(w);
  const float alpha = q.alpha_w->data()[0];
  CHECK(alpha == doctest::Approx(sawb_alpha(w, 2)));
  y.backward(Tensor::ones({256}));
  for (int64_t i = 0; i < 256; ++i) CHECK(w.grad().data()[i] == (std::fabs(w.data()[i]) <= alpha ? 1.f : 0.f));
  std::set<float> levels(y.data(), y.data() + 256);
  CHECK(levels.size() <= 4);
  for (float l : levels) {
    const float k = l / alpha * 3;  // levels are +-alpha/3, +-alpha
    CHECK(std::fabs(std::fabs(k) - std::nearbyint(std::fabs(k))) < 1e-5f);
    CHECK((std::lround(std::fabs(k)) == 1 || std::lround(std::fabs(k)) == 3));
  }
  // Eval uses the stored alpha even when the weights change; training recomputes it.
  q.eval();
  Tensor w2 = w.detach().clone();
  for (int64_t i = 0; i < 256; ++i) w2.data()[i] *= 2;
  q(w2);
  CHECK(q.alpha_w->data()[0] == alpha);
  q.train();
  q(w2);
  CHECK(q.alpha_w->data()[0] == doctest::Approx(2 * alpha));
  CHECK(q.named_parameters().empty());
  CHECK(q.named_buffers().size() == 1);
}

TEST_CASE("QIL weights: pruned and clipped weights get no gradient, ln u guarded near u = 0") {
  // c = 0.5, d = 0.25: interval |w| in (0.25, 0.75).
  Tensor w = leaf({0.1f, -0.2f, 0.25f, 0.5f, -0.6f, 0.75f, 0.9f, -2.f, 0.25f + 1e-7f});
  Tensor c = param(0.5f), d = param(0.25f), g = param(1.3f);
  Tensor y = qil_weight_quantize(w, c, d, g, 2);
  y.backward(Tensor::ones(w.shape()));
  const auto yv = y.to_vector(), dw = w.grad().to_vector();
  CHECK(yv[0] == 0.f);
  CHECK(yv[1] == 0.f);
  CHECK(yv[6] == 1.f);
  CHECK(yv[7] == -1.f);
  for (int i : {0, 1, 2, 5, 6, 7}) CHECK(dw[i] == 0.f);
  CHECK(dw[3] != 0.f);
  CHECK(std::isfinite(g.grad().item()));
  CHECK(std::isfinite(c.grad().item()));
  // Only the inside weights (0.5, -0.6 and the one just above the pruning edge) contribute.
  Tensor w_out = leaf({0.1f, 0.9f});
  Tensor c2 = param(0.5f), d2 = param(0.25f), g2 = param(1.3f);
  qil_weight_quantize(w_out, c2, d2, g2, 2).backward(Tensor::ones({2}));
  CHECK(c2.grad().item() == 0.f);
  CHECK(d2.grad().item() == 0.f);
  CHECK(g2.grad().item() == 0.f);
}

// The interval transform before rounding, in double: the STE gradients must be its derivatives.
TEST_CASE("QIL: c, d, gamma, x gradients match finite differences of the smooth transform") {
  Generator gen(11);
  const double c = 0.5, d = 0.3, gamma = 1.4;
  std::vector<float> wv, gv;
  for (int i = 0; i < 40; ++i) {
    float v;
    do v = (gen.uniform() * 2 - 1) * 0.78f;
    while (std::fabs(std::fabs(v) - 0.2f) < 0.02f || std::fabs(std::fabs(v) - 0.8f) < 0.02f);
    wv.push_back(v);
    gv.push_back(gen.normal());
  }
  auto loss = [&](double cc, double dd, double gg, int bump, double h) {
    double L = 0;
    for (size_t i = 0; i < wv.size(); ++i) {
      const double w = wv[i] + (static_cast<int>(i) == bump ? h : 0.0);
      const double u = (std::fabs(w) - cc + dd) / (2 * dd);
      const double s = w > 0 ? 1 : -1;
      const double wh = u <= 0 ? 0 : (u >= 1 ? s : s * std::pow(u, gg));
      L += gv[i] * wh;
    }
    return L;
  };
  Tensor w = leaf(wv);
  Tensor tc = param(c), td = param(d), tg = param(gamma);
  qil_weight_quantize(w, tc, td, tg, 4).backward(vec(gv));
  const double h = 1e-6;
  CHECK(tc.grad().item() == doctest::Approx((loss(c + h, d, gamma, -1, 0) - loss(c - h, d, gamma, -1, 0)) / (2 * h)).epsilon(1e-4));
  CHECK(td.grad().item() == doctest::Approx((loss(c, d + h, gamma, -1, 0) - loss(c, d - h, gamma, -1, 0)) / (2 * h)).epsilon(1e-4));
  CHECK(tg.grad().item() == doctest::Approx((loss(c, d, gamma + h, -1, 0) - loss(c, d, gamma - h, -1, 0)) / (2 * h)).epsilon(1e-4));
  for (int i = 0; i < 40; i += 7)
    CHECK(w.grad().data()[i] == doctest::Approx((loss(c, d, gamma, i, h) - loss(c, d, gamma, i, -h)) / (2 * h)).epsilon(1e-3));

  // Activations: x_hat = clip((x - c + d) / (2d), 0, 1).
  std::vector<float> xv;
  for (int i = 0; i < 30; ++i) xv.push_back(0.25f + 0.5f * gen.uniform());  // inside (0.2, 0.8)
  auto act_loss = [&](double cc, double dd) {
    double L = 0;
    for (size_t i = 0; i < xv.size(); ++i) L += gv[i] * std::clamp((xv[i] - cc + dd) / (2 * dd), 0.0, 1.0);
    return L;
  };
  Tensor x = leaf(xv);
  Tensor ac = param(c), ad = param(d);
  qil_act_quantize(x, ac, ad, 4).backward(vec(std::vector<float>(gv.begin(), gv.begin() + 30)));
  CHECK(ac.grad().item() == doctest::Approx((act_loss(c + h, d) - act_loss(c - h, d)) / (2 * h)).epsilon(1e-4));
  CHECK(ad.grad().item() == doctest::Approx((act_loss(c, d + h) - act_loss(c, d - h)) / (2 * h)).epsilon(1e-4));
}

TEST_CASE("LSQ STE: inside, below -Q_N, above Q_P; gradient scale in the raw gradient") {
  // Weights, 2 bits: Q_N = 2, Q_P = 1, s = 1, N = 4: g = 1/sqrt(4).
  Tensor v = leaf({-3.f, -0.4f, 0.3f, 2.f});
  Tensor s = param(1.f);
  Tensor y = lsq_quantize(v, s, 2, 1, 4);
  y.backward(Tensor::ones({4}));
  CHECK(y.to_vector() == std::vector<float>{-2.f, -0.f, 0.f, 1.f});
  CHECK(v.grad().to_vector() == std::vector<float>{0, 1, 1, 0});
  CHECK(s.grad().item() == doctest::Approx((-2 + 0.4 - 0.3 + 1) * 0.5));
}

namespace {

// Rank 0 of 2 replicas whose other rank holds the same data: allreduce doubles (x + x, exact),
// broadcasts keep the values. DataParallel's average of identical gradients is then the local
// gradient bit for bit (x n_r, x 2, / 2 n_r), so a replica must end with one process's numbers.
class TwinComm : public Comm {
 public:
  const char* backend() const override { return "twin"; }
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_size() const override { return 2; }
  void allreduce_sum(float* data, int64_t count) override { twice(data, count); }
  void allreduce_sum(double* data, int64_t count) override { twice(data, count); }
  void broadcast(void*, int64_t, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int) override { std::abort(); }
  int allreduces = 0;

 private:
  template <class T>
  void twice(T* data, int64_t count) {
    ++allreduces;
    for (int64_t i = 0; i < count; ++i) data[i] += data[i];
  }
};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.defined() && b.defined() && a.numel() == b.numel() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("a weight quantizer under DataParallel: learned parameters' gradient from the averaged weight gradient") {
  // LSQ's s and QIL's c/d/gamma (and QIL's weight gradient): backward keeps g (dL/d quantized
  // weight) instead of adding the rank's own sums; reduce_gradients averages g after the parameter
  // gradients and adds (+=) the gradients of the one-process function: the bits of one process. A
  // detach with g still kept adds this rank's own (as one process would).
  Generator gen(3);
  const Tensor w0 = Tensor::randn({16, 3, 3, 3}, gen, 0.f, 0.2f);
  const Tensor r = Tensor::randn({16, 3, 3, 3}, gen, 0.f, 1.f);  // dL/dy
  for (const bool qil : {false, true}) {
    CAPTURE(qil);
    auto make = [&]() -> std::shared_ptr<Quantizer> {
      if (qil) return std::make_shared<QilWeightQuantizer>(2);
      return std::make_shared<LsqQuantizer>(2, QuantTarget::weight);
    };
    auto prefill = [](Quantizer& q) {  // backward accumulates: the noise must stay underneath
      for (auto& [name, p] : q.named_parameters()) p.set_grad(Tensor::full(p.shape(), 0.25f));
    };
    auto alone = make(), replica = make();
    prefill(*alone);
    prefill(*replica);
    Tensor wa = w0.clone().set_requires_grad(true), wr = w0.clone().set_requires_grad(true);
    alone->forward(wa).backward(r);
    TwinComm twin;
    {
      DataParallel dp(*replica, {}, twin);
      dp.forward(wr).backward(r);
      for (auto& [name, p] : replica->named_parameters()) {
        CAPTURE(name);
        CHECK(p.grad().item() == 0.25f);  // nothing added in backward: deferred
      }
      // LSQ's dw = g inside the grid (exact: the ranks' average is one process's) is added now;
      // QIL's dw = g * slope rounds, so it waits for the averaged g as well.
      CHECK(wr.grad().defined() == !qil);
      const int before = twin.allreduces;
      dp.reduce_gradients(4, 0.0);
      CHECK(twin.allreduces == before + 2);  // the gradient buckets, then the kept g
      const auto a = alone->named_parameters(), b = replica->named_parameters();
      REQUIRE(a.size() == b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        CAPTURE(a[i].first);
        CHECK(same_bits(a[i].second.grad(), b[i].second.grad()));
      }
      CHECK(same_bits(wa.grad(), wr.grad()));
      // A second backward, then the DataParallel goes away before any reduce: detached, the
      // quantizer adds what it kept from this rank's own g.
      alone->forward(wa).backward(r);
      dp.forward(wr).backward(r);
    }
    const auto a = alone->named_parameters(), b = replica->named_parameters();
    for (size_t i = 0; i < a.size(); ++i) {
      CAPTURE(a[i].first);
      CHECK(same_bits(a[i].second.grad(), b[i].second.grad()));
    }
    // Alone again: backward adds directly.
    alone->forward(wa).backward(r);
    replica->forward(wr).backward(r);
    for (size_t i = 0; i < a.size(); ++i) {
      CAPTURE(a[i].first);
      CHECK(same_bits(a[i].second.grad(), b[i].second.grad()));
    }
  }
}

TEST_CASE("codes(): the integer mapping reproduces the forward for every quantizer") {
  Generator gen(5);
  Tensor w = Tensor::randn({4, 3, 3, 3}, gen, 0.f, 0.2f);
  Tensor a = Tensor::randn({2, 4, 5, 5}, gen, 0.5f, 0.8f);
  std::vector<std::shared_ptr<Quantizer>> qs = {
      std::make_shared<DorefaWeightQuantizer>(2), std::make_shared<DorefaActQuantizer>(3),
      std::make_shared<PactQuantizer>(2),         std::make_shared<SawbQuantizer>(4),
      std::make_shared<QilWeightQuantizer>(3),    std::make_shared<QilActQuantizer>(2),
      std::make_shared<LsqQuantizer>(2, QuantTarget::weight), std::make_shared<LsqQuantizer>(4, QuantTarget::activation),
      std::make_shared<SignedInputQuantizer>(8)};
  for (auto& q : qs) {
    const Tensor& x = q->target() == QuantTarget::weight ? w : a;
    Tensor y = q->forward(x);
    QuantizedCodes codes = q->codes(x);
    Tensor back = codes.dequantize();
    INFO(q->describe());
    REQUIRE(back.shape() == x.shape());
    int bad = 0;
    for (int64_t i = 0; i < x.numel(); ++i) bad += std::fabs(back.data()[i] - y.data()[i]) > 1e-5f * (1 + std::fabs(y.data()[i]));
    CHECK(bad == 0);
    for (uint8_t c : codes.codes) CHECK(c < (1 << codes.bits));
  }
}

TEST_CASE("registry: every method's factory, codes() and integer rule agree with its forward") {
  // Iterates quant/registry.h: a new method is checked here without editing this test.
  Generator gen(9);
  const Tensor w = Tensor::randn({4, 3, 3, 3}, gen, 0.f, 0.2f);
  Tensor a = Tensor::randn({2, 4, 5, 5}, gen, 0.5f, 0.8f);
  for (int64_t i = 0; i < 40; ++i) a.data()[i] = 0.25f * static_cast<float>(i - 10);  // ties, negatives
  int checked = 0;
  CHECK(method_codes().size() == quantizer_methods().size());
  for (const QuantizerMethod& m : quantizer_methods()) {
    CHECK(&quantizer_method(m.name) == &m);
    CHECK(static_cast<bool>(m.make_activation) == static_cast<bool>(m.act_rule));
    // The runtime's table of method names (quant/runtime/act_code.h) agrees row by row.
    const MethodCodes* codes = find_method_codes(m.name);
    REQUIRE(codes != nullptr);
    CHECK(codes->weights == static_cast<bool>(m.make_weight));
    CHECK(codes->act_rule == m.act_rule);
    for (QuantTarget target : {QuantTarget::weight, QuantTarget::activation}) {
      if (!(target == QuantTarget::weight ? m.make_weight : m.make_activation)) {
        CHECK_THROWS_WITH_AS(make_quantizer(m.name, target, 4), doctest::Contains(m.name.c_str()), Error);
        continue;
      }
      for (int bits : {2, 4, 8}) {
        auto q = make_quantizer(m.name, target, bits);
        CAPTURE(q->describe());
        CHECK(q->method() == m.name);
        CHECK(q->target() == target);
        CHECK(q->bits() == bits);
        const Tensor& x = target == QuantTarget::weight ? w : a;
        q->train();
        const Tensor y = q->forward(x);  // runs the statistics init
        q->eval();
        const QuantizedCodes codes = q->codes(x);
        const Tensor back = codes.dequantize();
        int bad = 0;
        for (int64_t i = 0; i < x.numel(); ++i)
          bad += std::fabs(back.data()[i] - y.data()[i]) > 1e-5f * (1 + std::fabs(y.data()[i]));
        CHECK(bad == 0);
        if (target == QuantTarget::weight) {
          CHECK_THROWS_AS(q->code_spec(), Error);
          continue;
        }
        // The integer meaning: the runtime's codes are the module's codes, scalar and vectorised.
        const ActCodeSpec spec = q->code_spec();
        CHECK(spec.method == m.name);
        CHECK(spec.bits == bits);
        const ActCodeRule& rule = act_code_rule(m.name);
        CHECK(rule.check(spec).empty());
        CHECK(rule.zero_point(spec) == codes.zero_point);
        std::vector<uint8_t> many(static_cast<size_t>(x.numel()));
        rule.quantize_many(spec, x.data(), x.numel(), many.data());
        int differ = 0, affine_differ = 0;
        const auto affine = rule.affine(spec);
        for (int64_t i = 0; i < x.numel(); ++i) {
          differ += rule.quantize(spec, x.data()[i]) != codes.codes[static_cast<size_t>(i)];
          differ += many[static_cast<size_t>(i)] != codes.codes[static_cast<size_t>(i)];
          if (affine) {  // the folded form: equal up to the float rounding of mul*x + add at ties
            const double v = std::nearbyint(affine->mul * x.data()[i] + affine->add);
            affine_differ += std::clamp(v, 0.0, static_cast<double>((1 << bits) - 1)) != codes.codes[static_cast<size_t>(i)];
          }
        }
        CHECK(differ == 0);
        CHECK(affine_differ <= 2);
        // The runtime's SIMD form of the rule (when it has one) gives the same codes at every level.
        if (const auto map = rule.code_map(spec))
          for (kernels::Isa isa : lowbit::test::available_isas()) {
            std::vector<uint8_t> simd(many.size(), 0xAB);
            kernels::quantize_codes_at(isa, *map, x.data(), x.numel(), simd.data());
            CHECK(simd == many);
          }
        ++checked;
      }
    }
  }
  CHECK(checked >= 15);
  CHECK_THROWS_WITH_AS(quantizer_method("nosuch"), doctest::Contains("'nosuch' (known: dorefa, pact, sawb, qil, lsq, input)"),
                       Error);
  CHECK_THROWS_WITH_AS(act_code_rule("sawb"), doctest::Contains("unknown activation quantizer method 'sawb'"), Error);
  // Policy methods: exactly those the registrations list, each pairing registered methods with the
  // quantizer side it needs, options from those two methods.
  const auto names = quant_method_names();
  CHECK(names.front() == "fp32");
  size_t listed = 1;
  for (const QuantizerMethod& m : quantizer_methods())
    for (const PolicyMethod& p : m.policies) {
      CAPTURE(p.name);
      ++listed;
      CHECK(std::find(names.begin(), names.end(), p.name) != names.end());
      CHECK(quantizer_method(p.weights).make_weight);
      CHECK(quantizer_method(p.activations).make_activation);
      CHECK(!p.help.empty());
    }
  CHECK(listed == names.size());
  CHECK(names == std::vector<std::string>{"fp32", "dorefa", "pact", "pact-sawb", "qil", "lsq"});
  CHECK_THROWS_WITH_AS(QuantPolicy::from_json_string(R"({"method":"nosuch"})"),
                       doctest::Contains(("unknown method 'nosuch' (expected " + join_names(names, " | ") + ")").c_str()), Error);
  // The registry is a value: a copy with one more method leaves builtin() alone; names are unique.
  QuantizerRegistry mine = QuantizerRegistry::builtin();
  QuantizerMethod extra = quantizer_method("sawb");
  extra.name = "sawb2";
  mine.add(extra);
  CHECK(mine.find("sawb2") != nullptr);
  CHECK(find_quantizer_method("sawb2") == nullptr);
  CHECK_THROWS_WITH_AS(mine.add(extra), doctest::Contains("'sawb2' is already registered"), Error);
  QuantizerMethod clash = quantizer_method("pact");
  clash.name = "pact2";
  CHECK_THROWS_WITH_AS(mine.add(clash), doctest::Contains("policy method 'pact' of 'pact2' is already defined"), Error);
  QuantizerMethod ruleless = quantizer_method("pact");
  ruleless.name = "pact3";
  ruleless.policies.clear();
  ruleless.act_rule = nullptr;
  CHECK_THROWS_WITH_AS(mine.add(ruleless), doctest::Contains("act_rule"), Error);
}

TEST_CASE("warm-up switch: pass-through while disabled, statistics init on the first enabled batch") {
  Generator gen(2);
  Tensor x = Tensor::randn({8, 16}, gen, 0.5f, 1.f);
  PactQuantizer q(2);  // init mse
  set_quantization_enabled(q, false);
  Tensor y = q(x);
  CHECK(y.same_storage(x));
  CHECK_FALSE(q.initialized());
  CHECK(q.alpha->data()[0] == 10.f);
  set_quantization_enabled(q, true);
  q(x);
  CHECK(q.initialized());
  const float a = q.alpha->data()[0];
  CHECK(a == doctest::Approx(mse_optimal_clip(x.data(), x.numel(), 2)));
  CHECK(a < 3.f);
  // The flag is a buffer: a restored quantizer does not re-initialise.
  PactQuantizer q2(2);
  q2.load_state_dict(q.state_dict());
  Tensor x2 = Tensor::randn({8, 16}, gen, 3.f, 1.f);
  q2(x2);
  CHECK(q2.alpha->data()[0] == a);
  // Paper init keeps 10.
  PactQuantizer fixed(2, PactInit::fixed);
  fixed(x);
  CHECK(fixed.alpha->data()[0] == 10.f);
  // A policy's pact_init: the names, or a number = a fixed start at that alpha; bad forms name the input.
  CHECK(parse_pact_init("mse").init == PactInit::mse);
  CHECK(parse_pact_init("p99").init == PactInit::percentile99);
  CHECK(parse_pact_init("fixed").alpha == 10.f);
  CHECK(parse_pact_init("1.5").init == PactInit::fixed);
  CHECK(parse_pact_init("1.5").alpha == 1.5f);
  for (const char* bad : {"", "0", "-1", "1.5x", "inf", "nan", "msee"})
    CHECK(error_of([&] { parse_pact_init(bad); }).find("unknown PACT init '" + std::string(bad) + "'") != std::string::npos);
  auto started = quantizer_method("pact").make_activation(2, {{"pact_init", "0.75"}});
  (*started)(x);
  CHECK(std::dynamic_pointer_cast<PactQuantizer>(started)->alpha->data()[0] == 0.75f);
  LsqQuantizer lsq(2, QuantTarget::activation);
  lsq(x);
  double mean_abs = 0;
  for (int64_t i = 0; i < x.numel(); ++i) mean_abs += std::fabs(x.data()[i]);
  mean_abs /= x.numel();
  CHECK(lsq.s->data()[0] == doctest::Approx(2 * mean_abs / std::sqrt(3.0)).epsilon(1e-5));
}

TEST_CASE("calibration thresholds: percentile and KL on histograms with a known answer") {
  // Uniform mass on the first 512 of 2048 bins plus one outlier in the last bin: KL keeps exactly
  // the 512 occupied bins (fewer clips mass, more wastes levels): threshold (512 + 0.5) * width.
  std::vector<double> hist(2048, 0.0);
  for (int i = 0; i < 512; ++i) hist[i] = 100;
  hist[2047] = 1;
  const double width = 4.0 / 2048;
  CHECK(kl_threshold(hist, width, 4) == doctest::Approx(512.5 * width));
  CHECK(kl_threshold(hist, width, 16) == doctest::Approx(512.5 * width));
  // Percentile: 99% of 51201 counts lies within the first 507 bins (100 * 507 >= 0.99 * 51201).
  CHECK(percentile_threshold(hist, width, 99.0) == doctest::Approx(507 * width));
  CHECK(percentile_threshold(hist, width, 100.0) == doctest::Approx(2048 * width));
  // A Gaussian |x| with a far outlier: KL clips well below the max at 2 bits, more at 8 bits.
  Generator gen(1);
  std::vector<double> g(2048, 0.0);
  const double max = 20.0, w = max / 2048;
  for (int i = 0; i < 200000; ++i) g[std::min(2047, static_cast<int>(std::fabs(gen.normal()) / w))] += 1;
  g[2047] += 1;
  const double t2 = kl_threshold(g, w, 4), t8 = kl_threshold(g, w, 256);
  CHECK(t2 > 1.0);
  CHECK(t2 < 4.0);
  CHECK(t8 > t2);
  CHECK(t8 < 10.0);
}

namespace {
Dataset tiny_dataset(Split split) {
  SyntheticOptions o;
  o.train_size = 256;
  o.test_size = 64;
  o.height = o.width = 12;
  o.classes = 4;
  return make_synthetic_dataset(o, split);
}
std::shared_ptr<Module> tiny_convnet() {
  Generator init(1);
  return make_model("convnet", ModelConfig{1, 12, 12, 4}, init);
}
QuantPolicy pact_sawb(int bits) {
  QuantPolicy policy;
  policy.method = "pact-sawb";
  policy.wbits = policy.abits = bits;
  return policy;
}
}  // namespace

TEST_CASE("calibrate(): sets PACT clips of a converted model from data") {
  const Dataset ds = tiny_dataset(Split::Train);
  DataLoader loader(ds, LoaderOptions::evaluation(64));
  auto model = tiny_convnet();
  const QuantPolicy policy = pact_sawb(4);
  convert_model(*model, policy);
  const auto plan = plan_layers(*tiny_convnet(), policy);
  auto max_clips = calibrate(*model, loader, 2, CalibrationMethod::max);
  REQUIRE(max_clips.size() == 4);  // input quantizer + 2 convs + linear
  auto frac = calibrate(*model, loader, 2, CalibrationMethod::fraction_of_max);
  auto pct = calibrate(*model, loader, 2, CalibrationMethod::percentile);
  auto kl = calibrate(*model, loader, 2, CalibrationMethod::kl);
  for (auto& [name, clip] : max_clips) {
    INFO(name);
    CHECK(frac[name] == doctest::Approx(0.8 * clip));
    CHECK(pct[name] <= clip * 1.0001);
    CHECK(kl[name] <= clip * 1.0001);
    CHECK(kl[name] > 0);
  }
  PactQuantizer* pact = nullptr;
  const std::string second = plan.at(1).name + ".act_quantizer";  // the second conv's input
  for (auto& [name, q] : named_quantizers(*model))
    if (name == second) pact = dynamic_cast<PactQuantizer*>(q.get());
  REQUIRE(pact);
  CHECK(pact->alpha->data()[0] == doctest::Approx(kl[second]));
  CHECK(pact->initialized());
  CHECK(model->is_training());
  CHECK(quantization_enabled(*model));
}

TEST_CASE("calibrate(): skip_zeros leaves post-ReLU zeros out of the histogram") {
  const Dataset ds = tiny_dataset(Split::Train);
  DataLoader loader(ds, LoaderOptions::evaluation(64));
  auto model = tiny_convnet();
  convert_model(*model, pact_sawb(2));
  const auto with_zeros = calibrate(*model, loader, 2, CalibrationMethod::percentile);
  CalibrationOptions skip;
  skip.skip_zeros = true;
  const auto without_zeros = calibrate(*model, loader, 2, CalibrationMethod::percentile, skip);
  int wider = 0;
  for (auto& [name, clip] : with_zeros) {
    INFO(name);
    // Dropping mass at 0 can only move a percentile up; post-ReLU inputs have many zeros.
    CHECK(without_zeros.at(name) >= clip * 0.9999);
    wider += without_zeros.at(name) > clip * 1.0001;
  }
  CHECK(wider >= 1);
}

TEST_CASE("conversion: convnet and resnet20 names, typed slots, bits table, state_dict and policy round trips") {
  auto model = tiny_convnet();
  QuantPolicy policy;
  policy.method = "pact-sawb";
  policy.wbits = policy.abits = 2;
  auto plan = convert_model(*model, policy);
  REQUIRE(plan.size() == 4);
  CHECK(plan.front().name == "0");
  const std::string l1 = plan[1].name, l2 = plan[2].name, last = plan.back().name;
  CHECK(plan.front().wbits == 8);
  CHECK(plan.back().abits == 8);
  CHECK(plan[1].wbits == 2);
  std::set<std::string> names;
  for (auto& [n, t] : model->named_parameters()) names.insert(n);
  CHECK(names.count(l1 + ".act_quantizer.alpha"));
  CHECK(names.count(l2 + ".act_quantizer.alpha"));
  CHECK(names.count(last + ".act_quantizer.alpha"));
  CHECK(names.count(l1 + ".weight"));
  CHECK_FALSE(names.count("0.act_quantizer.alpha"));  // the image gets the signed input quantizer
  std::set<std::string> buffers;
  for (auto& [n, t] : model->named_buffers()) buffers.insert(n);
  CHECK(buffers.count(l1 + ".weight_quantizer.alpha_w"));
  CHECK(buffers.count("0.act_quantizer.max_abs"));
  const std::string table = bits_table(*model);
  INFO(table);
  CHECK(table.find("8b sawb") != std::string::npos);
  CHECK(table.find("8b input") != std::string::npos);
  CHECK(table.find("2b pact") != std::string::npos);
  auto rows = layer_bits(*model);
  CHECK(rows.front().wbits == 8);
  CHECK(rows.front().abits == 8);
  CHECK(rows.back().wbits == 8);
  CHECK(rows[1].wbits == 2);
  CHECK(error_of([&] { convert_model(*model, policy); }).find("already") != std::string::npos);

  // Run a batch so statistics exist, then a state_dict round trip through a file.
  Generator gen(4);
  Tensor x = Tensor::randn({4, 1, 12, 12}, gen);
  model->train();
  model->forward(x);
  model->eval();
  Tensor y1 = model->forward(x);
  const std::string path = "quant_test_state.lbt";
  save_state_dict(path, model->state_dict());
  auto other = tiny_convnet();
  const QuantPolicy restored = QuantPolicy::from_json_string(policy.to_json_string());
  convert_model(*other, restored);
  other->load_state_dict(load_state_dict_file(path));
  std::remove(path.c_str());
  other->eval();
  Tensor y2 = other->forward(x);
  CHECK(y1.to_vector() == y2.to_vector());

  // Policy JSON round trip with overrides, and errors that name the field.
  QuantPolicy p;
  p.method = "pact-sawb";
  p.wbits = 3;
  p.abits = 4;
  p.first_last_bits = 32;
  p.options["pact_init"] = "p99";
  p.overrides.push_back(QuantPolicy::parse_override("5.*=4/4"));
  const QuantPolicy q = QuantPolicy::from_json_string(p.to_json_string());
  CHECK(q.to_json() == p.to_json());
  CHECK(q.overrides.at(0).pattern == "5.*");
  CHECK(p.to_json()["options"] == nlohmann::json{{"pact_init", "p99"}});
  // Method options: defaults written out, an option the method lacks refused by name, a bad value
  // refused by the option's check; older checkpoints' top-level pact_init read as the option.
  QuantPolicy lsq;
  lsq.method = "lsq";
  lsq.wbits = lsq.abits = 4;
  CHECK(lsq.to_json()["options"] == nlohmann::json::object());
  lsq.options["pact_init"] = "p99";
  CHECK(error_of([&] { lsq.validate(); }) ==
        "quant policy: option 'pact_init' is not an option of method 'lsq' (its options: none)");
  QuantPolicy sawb;
  sawb.method = "pact-sawb";
  CHECK(sawb.to_json()["options"] == nlohmann::json{{"pact_init", "mse"}});
  sawb.options["pact_init"] = "wide";
  CHECK(error_of([&] { sawb.validate(); }).find("unknown PACT init 'wide'") != std::string::npos);
  const QuantPolicy old = QuantPolicy::from_json_string(R"({"method":"pact","wbits":2,"abits":2,"pact_init":"p99"})");
  CHECK(old.options.at("pact_init") == "p99");
  const QuantPolicy old_lsq = QuantPolicy::from_json_string(R"({"method":"lsq","wbits":2,"abits":2,"pact_init":"mse"})");
  CHECK(old_lsq.options.empty());
  CHECK(error_of([] { QuantPolicy::from_json_string(R"({"method":"foo"})"); }).find("unknown method 'foo'") != std::string::npos);
  CHECK(error_of([] { QuantPolicy::from_json_string(R"({"method":"pact","wbits":9})"); }).find("wbits") != std::string::npos);
  CHECK(error_of([] { QuantPolicy::parse_override("5.*=4"); }).find("PATTERN=W/A") != std::string::npos);

  // resnet20: BasicBlock's typed Conv2d slots accept QuantConv2d; overrides by glob.
  Generator init(2);
  auto resnet = make_model("resnet20", ModelConfig{3, 8, 8, 10}, init);
  QuantPolicy rp;
  rp.method = "qil";
  rp.wbits = rp.abits = 2;
  rp.overrides.push_back(QuantPolicy::parse_override("5.*=4/4"));
  auto rplan = convert_model(*resnet, rp);
  std::set<std::string> rnames;
  for (auto& [n, t] : resnet->named_parameters()) rnames.insert(n);
  CHECK(rnames.count("3.0.conv1.weight_quantizer.gamma"));
  CHECK(rnames.count("3.0.conv1.act_quantizer.d"));
  CHECK(rnames.count("4.0.shortcut_conv.weight_quantizer.c"));
  for (auto& lp : rplan) {
    INFO(lp.name);
    if (lp.first || lp.last) CHECK(lp.wbits == 8);
    else if (lp.name.rfind("5.", 0) == 0) CHECK(lp.wbits == 4);
    else CHECK(lp.wbits == 2);
  }
  Tensor rx = Tensor::randn({2, 3, 8, 8}, gen);
  Tensor out = resnet->forward(rx);
  CHECK(out.shape() == Shape{2, 10});
  CHECK(glob_match("5.*", "5.1.conv2"));
  CHECK_FALSE(glob_match("5.*", "15.1.conv2"));
  CHECK(glob_match("*.conv?", "3.0.conv1"));
}

TEST_CASE("make_param_groups: every parameter once, quantizer kinds with their clamps, decay, grad scale") {
  for (const std::string method : {"pact", "qil", "lsq"}) {
    INFO(method);
    auto model = tiny_convnet();
    QuantPolicy p;
    p.method = method;
    p.wbits = p.abits = 2;
    convert_model(*model, p);
    auto groups = make_param_groups(*model, 0.1, 5e-4);
    size_t count = 0;
    std::set<const TensorImpl*> seen;
    for (auto& g : groups)
      for (auto& t : g.params) {
        ++count;
        seen.insert(t.impl());
      }
    CHECK(count == model->named_parameters().size());
    CHECK(seen.size() == count);
    CHECK(groups.front().name == "weights");
    CHECK(groups.front().weight_decay == 5e-4);
    if (method == "pact") {
      REQUIRE(groups.size() == 2);
      CHECK(groups[1].name == "pact.alpha");
      CHECK(groups[1].min_value == 1e-3);
      CHECK(groups[1].weight_decay == 5e-4);
      CHECK(groups[1].params.size() == 3);
      // A huge push below zero is clamped at 1e-3 by the optimizer.
      auto opt = make_optimizer("sgd", groups);
      for (auto& t : groups[1].params) t.set_grad(Tensor::full({1}, 1e6f));
      opt->step();
      for (auto& t : groups[1].params) CHECK(t.item() == doctest::Approx(1e-3));
    } else if (method == "qil") {
      bool found_d = false;
      for (auto& g : groups)
        if (g.name.rfind("qil.d:", 0) == 0) {
          found_d = true;
          CHECK(g.min_value == 1e-6);
          CHECK(g.grad_scale == 0.0);  // until a forward saw the layer
        }
      CHECK(found_d);
      Generator gen(1);
      model->forward(Tensor::randn({2, 1, 12, 12}, gen));
      auto groups2 = make_param_groups(*model, 0.1, 5e-4);
      const std::string key = "qil.c:" + layer_bits(*model).at(1).name + ".weight_quantizer";
      bool found = false;
      for (auto& g : groups2)
        if (g.name == key) {
          found = true;
          CHECK(g.grad_scale == doctest::Approx(1 / std::sqrt(64.0 * 32 * 9)));  // N = 64*32*3*3, q = 1
        }
      CHECK(found);
    } else {
      REQUIRE(groups.size() == 2);
      CHECK(groups[1].name == "lsq.s");
      CHECK(groups[1].min_value == LsqQuantizer::kMinStep);
    }
    // The quantizer lr multiplier scales every quantizer group and leaves the weights alone.
    // A quantizer decay replaces the weights' decay only where a parameter takes decay (PACT alpha).
    auto scaled = make_param_groups(*model, 0.1, 5e-4, {10.0, 0.02});
    REQUIRE(scaled.size() == groups.size());
    CHECK(scaled.front().lr == 0.1);
    CHECK(scaled.front().weight_decay == 5e-4);
    for (size_t i = 1; i < scaled.size(); ++i) {
      CHECK(scaled[i].lr == doctest::Approx(1.0));
      CHECK(scaled[i].weight_decay == (method == "pact" ? 0.02 : 0.0));
    }
    CHECK_THROWS_WITH_AS(make_param_groups(*model, 0.1, 5e-4, {0.0, -1.0}),
                         doctest::Contains("multiplier must be positive"), Error);
  }
}

TEST_CASE("default_recipe: the measured settings per method, from scratch and as a fine-tune") {
  const QatRecipe fp = default_recipe("fp32", 32, 32);
  CHECK(fp.float_epochs == 0);
  CHECK(fp.weight_decay == doctest::Approx(5e-4));
  const QatRecipe scratch = default_recipe("pact-sawb", 2, 2);
  CHECK(scratch.float_epochs == 1);
  CHECK(scratch.weight_decay == doctest::Approx(2e-4));
  CHECK(scratch.quant_lr_mult == 1.0);
  const QatRecipe tune = default_recipe("pact-sawb", 2, 2, /*fine_tune=*/true);
  CHECK(tune.float_epochs == 0);
  CHECK(tune.quant_lr_mult == doctest::Approx(0.01));
  CHECK(tune.weight_decay == doctest::Approx(2e-4));
  for (const std::string& m : quant_method_names()) {
    CAPTURE(m);
    const QatRecipe r = default_recipe(m, 2, 2, true);
    CHECK(r.float_epochs == 0);
    if (m != "pact-sawb") CHECK(r.quant_lr_mult == 1.0);  // measured only for PACT-SAWB
  }
  CHECK(default_recipe("lsq", 4, 4).lr == doctest::Approx(0.02));
  CHECK(default_recipe("dorefa", 4, 4).weight_decay == doctest::Approx(5e-4));
  CHECK_THROWS_AS(default_recipe("nope", 2, 2), Error);
}

TEST_CASE("training smoke test: every method lowers the loss and moves its quantizer parameters") {
  const Dataset ds = tiny_dataset(Split::Train);
  LoaderOptions lo;
  lo.batch_size = 32;
  lo.seed = 3;
  DataLoader loader(ds, lo);
  for (const std::string& method : quant_method_names()) {
    if (method == "fp32") continue;
    INFO(method);
    auto model = tiny_convnet();
    QuantPolicy p;
    p.method = method;
    p.wbits = p.abits = 2;
    convert_model(*model, p);
    auto groups = make_param_groups(*model, 0.05, 1e-4);
    auto opt = make_optimizer("sgd", groups);
    model->train();
    // Step 0 runs the statistics inits; capture the quantizer state right after it.
    nlohmann::json after_init;
    double first = 0, last = 0;
    const int steps = 24;
    for (int s = 0; s < steps; ++s) {
      const Batch b = loader.batch(s % loader.steps());
      opt->zero_grad();
      Tensor loss = cross_entropy(model->forward(b.images), b.labels);
      if (s == 0) after_init = quantizer_state(*model);
      loss.backward();
      opt->step();
      if (s < 4) first += loss.item() / 4;
      if (s >= steps - 4) last += loss.item() / 4;
    }
    CHECK(last < first * 0.8);
    const nlohmann::json now = quantizer_state(*model);
    bool moved = method == "dorefa" || method == "pact-sawb";  // statistics-only weights
    for (auto& [k, v] : now.items()) {
      CHECK(std::isfinite(v.get<double>()));
      if ((k.find(".alpha") != std::string::npos || k.find(".s") != std::string::npos ||
           k.find(".d") != std::string::npos) &&
          std::fabs(v.get<double>() - after_init[k].get<double>()) > 1e-6)
        moved = true;
    }
    CHECK(moved);
    if (method == "pact-sawb") {
      const std::string l1 = layer_bits(*model).at(1).name;
      CHECK(now.contains(l1 + ".act_quantizer.alpha"));
      CHECK(now.contains(l1 + ".weight_quantizer.alpha_w"));
    }
  }
}
