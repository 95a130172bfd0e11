// test_ops.cpp: forward values and finite-difference gradient checks for every fp32 op.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "common/gradcheck.h"
#include "core/error.h"
#include "core/ops_conv.h"
#include "core/ops_dropout.h"
#include "core/ops_elementwise.h"
#include "core/ops_loss.h"
#include "core/ops_matmul.h"
#include "core/ops_norm.h"
#include "core/ops_pool.h"
#include "core/ops_reduce.h"
#include "core/threading.h"

using namespace lowbit;
using lowbit::testing::check_gradients;
using lowbit::testing::random_away_from;

namespace {
Generator gen(123);
Tensor rnd(const Shape& s) { return Tensor::randn(s, gen); }
}  // namespace

TEST_CASE("broadcasting binary ops: values and gradients") {
  Tensor a = Tensor::from_vector({2, 1}, {1, 2});
  Tensor b = Tensor::from_vector({3}, {10, 20, 30});
  CHECK(add(a, b).to_vector() == std::vector<float>{11, 21, 31, 12, 22, 32});
  CHECK(sub(a, b).to_vector() == std::vector<float>{-9, -19, -29, -8, -18, -28});
  for (auto shapes : std::vector<std::pair<Shape, Shape>>{{{2, 3}, {2, 3}}, {{2, 3}, {3}}, {{4, 1, 3}, {2, 1}},
                                                          {{2, 3}, {}}, {{1}, {3, 2}}}) {
    Tensor x = rnd(shapes.first), y = random_away_from(shapes.second, gen, 0.5f, 2.f);
    check_gradients([](const std::vector<Tensor>& v) { return add(v[0], v[1]); }, {x, y});
    check_gradients([](const std::vector<Tensor>& v) { return sub(v[0], v[1]); }, {x, y});
    check_gradients([](const std::vector<Tensor>& v) { return mul(v[0], v[1]); }, {x, y});
    check_gradients([](const std::vector<Tensor>& v) { return div(v[0], v[1]); }, {x, y});
  }
}

TEST_CASE("unary ops: gradients away from kinks") {
  Tensor x = random_away_from({5, 7}, gen, -2.f, 2.f, {0.f, -0.5f, 0.7f});
  check_gradients([](const std::vector<Tensor>& v) { return relu(v[0]); }, {x.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return clamp(v[0], -0.5f, 0.7f); }, {x.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return tanh(v[0]); }, {x.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return abs(v[0]); }, {x.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return exp(v[0]); }, {x.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return square(v[0]); }, {x.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return sigmoid(v[0]); }, {x.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return neg(mul_scalar(add_scalar(v[0], 1.f), 3.f)); },
                  {x.clone()});
  Tensor pos = random_away_from({4, 4}, gen, 0.2f, 3.f);
  check_gradients([](const std::vector<Tensor>& v) { return log(v[0]); }, {pos.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return sqrt(v[0]); }, {pos.clone()});
  CHECK(relu(Tensor::from_vector({3}, {-1, 0, 2})).to_vector() == std::vector<float>{0, 0, 2});
  CHECK_THROWS_AS(clamp(x, 1.f, 0.f), Error);
}

TEST_CASE("add_relu: relu(a + b) in one pass, same values and gradients") {
  Tensor a = random_away_from({3, 2, 5, 7}, gen, -2.f, 2.f, {0.f});
  Tensor b = mul_scalar(rnd({3, 2, 5, 7}), 1e-3f);  // keeps a + b away from the kink
  CHECK(add_relu(a, b).to_vector() == relu(add(a, b)).to_vector());
  check_gradients([](const std::vector<Tensor>& v) { return add_relu(v[0], v[1]); }, {a, b});
  CHECK_THROWS_WITH_AS(add_relu(a, rnd({3})), doctest::Contains("add_relu: shapes"), Error);
}

TEST_CASE("reductions") {
  Tensor x = rnd({3, 4, 5});
  check_gradients([](const std::vector<Tensor>& v) { return sum(v[0]); }, {x.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return mean(v[0]); }, {x.clone()});
  for (int64_t d : {0, 1, 2, -1}) {
    check_gradients([d](const std::vector<Tensor>& v) { return sum_dim(v[0], d); }, {x.clone()});
    check_gradients([d](const std::vector<Tensor>& v) { return mean_dim(v[0], d, true); }, {x.clone()});
  }
  Tensor m = Tensor::from_vector({2, 2}, {1, 5, 3, 2});
  CHECK(sum_dim(m, 0).to_vector() == std::vector<float>{4, 7});
  CHECK(sum_dim(m, 1, true).shape() == Shape{2, 1});
  CHECK(max_all(m).item() == 5.f);
  check_gradients([](const std::vector<Tensor>& v) { return max_all(v[0]); }, {m.clone()});
}

TEST_CASE("matmul and linear") {
  Tensor a = rnd({5, 7}), b = rnd({7, 3});
  Tensor c = matmul(a, b);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) {
      double s = 0;
      for (int k = 0; k < 7; ++k) s += a.data()[i * 7 + k] * b.data()[k * 3 + j];
      CHECK(c.data()[i * 3 + j] == doctest::Approx(s).epsilon(1e-5));
    }
  check_gradients([](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); }, {a, b});
  check_gradients([](const std::vector<Tensor>& v) { return linear(v[0], v[1], v[2]); },
                  {rnd({6, 9}), rnd({4, 9}), rnd({4})});
  check_gradients([](const std::vector<Tensor>& v) { return linear(v[0], v[1], Tensor()); },
                  {rnd({3, 5}), rnd({2, 5})});
  CHECK_THROWS_WITH_AS(matmul(a, a), doctest::Contains("[5, 7] and [5, 7]"), Error);
  CHECK_THROWS_WITH_AS(linear(a, rnd({3, 4}), Tensor()), doctest::Contains("weight [3, 4]"), Error);
}

TEST_CASE("large matmul split over threads: same values, bit-identical for a given thread count") {
  Tensor a = rnd({300, 200}), b = rnd({200, 150});
  set_num_threads(1);
  Tensor c1 = matmul(a, b);
  set_num_threads(2);
  Tensor c2 = matmul(a, b);
  Tensor c3 = matmul(a, b);
  set_num_threads(0);
  CHECK(c2.to_vector() == c3.to_vector());
  for (int64_t i = 0; i < c1.numel(); ++i) CHECK(c1.data()[i] == doctest::Approx(c2.data()[i]).epsilon(1e-5));
}

namespace {
// Direct convolution as the ground truth for conv2d's forward.
Tensor conv_direct(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& o) {
  const int64_t n = x.size(0), cin = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t cout = w.size(0), kh = w.size(2), kw = w.size(3), cg = cin / o.groups, og = cout / o.groups;
  const int64_t ho = conv_output_size(h, kh, o), wo = conv_output_size(wd, kw, o);
  Tensor y = Tensor::zeros({n, cout, ho, wo});
  for (int64_t i = 0; i < n; ++i)
    for (int64_t co = 0; co < cout; ++co)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow) {
          double s = b.defined() ? b.data()[co] : 0.0;
          const int64_t g = co / og;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t p = 0; p < kh; ++p)
              for (int64_t q = 0; q < kw; ++q) {
                const int64_t ih = oh * o.stride - o.padding + p * o.dilation;
                const int64_t iw = ow * o.stride - o.padding + q * o.dilation;
                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                s += w.data()[((co * cg + ci) * kh + p) * kw + q] *
                     x.data()[((i * cin + g * cg + ci) * h + ih) * wd + iw];
              }
          y.data()[((i * cout + co) * ho + oh) * wo + ow] = static_cast<float>(s);
        }
  return y;
}
}  // namespace

TEST_CASE("conv2d: forward against direct convolution, gradients, all options") {
  struct Case {
    Shape x, w;
    Conv2dOptions o;
    bool bias;
  };
  const std::vector<Case> cases = {
      {{2, 3, 7, 6}, {4, 3, 3, 3}, {1, 1, 1, 1}, true},
      {{1, 2, 9, 9}, {3, 2, 3, 3}, {2, 0, 1, 1}, false},
      {{2, 4, 8, 7}, {6, 2, 3, 2}, {1, 2, 2, 2}, true},  // groups + dilation + padding
      {{3, 3, 5, 5}, {2, 3, 1, 1}, {1, 0, 1, 1}, true},  // 1x1
      {{1, 1, 4, 4}, {1, 1, 4, 4}, {1, 0, 1, 1}, false}, // kernel = input
      {{2, 4, 6, 6}, {4, 1, 3, 3}, {2, 1, 1, 4}, true},  // depthwise, stride 2
  };
  for (const auto& c : cases) {
    Tensor x = rnd(c.x), w = rnd(c.w), b = c.bias ? rnd({c.w[0]}) : Tensor();
    Tensor y = conv2d(x, w, b, c.o);
    Tensor ref = conv_direct(x, w, b, c.o);
    REQUIRE(y.shape() == ref.shape());
    for (int64_t i = 0; i < y.numel(); ++i) CHECK(y.data()[i] == doctest::Approx(ref.data()[i]).epsilon(1e-4));
    const auto o = c.o;
    if (c.bias)
      check_gradients([o](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v[2], o); }, {x, w, b});
    else
      check_gradients([o](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], Tensor(), o); }, {x, w});
  }
  CHECK_THROWS_WITH_AS(conv2d(rnd({1, 3, 5, 5}), rnd({2, 4, 3, 3}), Tensor()),
                       doctest::Contains("input channels"), Error);
  CHECK_THROWS_WITH_AS(conv2d(rnd({1, 1, 2, 2}), rnd({1, 1, 3, 3}), Tensor()), doctest::Contains("does not fit"),
                       Error);
}

TEST_CASE("conv2d on a batch larger than one chunk matches per-image results") {
  Tensor x = rnd({9, 2, 6, 6}), w = rnd({3, 2, 3, 3});
  Tensor y = conv2d(x, w, Tensor(), {1, 1, 1, 1});
  Tensor ref = conv_direct(x, w, Tensor(), {1, 1, 1, 1});
  for (int64_t i = 0; i < y.numel(); ++i) CHECK(y.data()[i] == doctest::Approx(ref.data()[i]).epsilon(1e-4));
}

TEST_CASE("pooling") {
  Tensor x = Tensor::from_vector({1, 1, 2, 4}, {1, 5, 2, 0, 3, 4, 8, 7});
  CHECK(max_pool2d(x, 2).to_vector() == std::vector<float>{5, 8});
  CHECK(avg_pool2d(x, 2).to_vector() == std::vector<float>{13.f / 4, 17.f / 4});
  CHECK(global_avg_pool2d(x).to_vector() == std::vector<float>{30.f / 8});
  // Distinct values keep max pooling away from ties (its kink).
  Tensor d = Tensor::empty({2, 3, 6, 5});
  for (int64_t i = 0; i < d.numel(); ++i) d.data()[i] = static_cast<float>((i * 37) % 101) * 0.1f;
  check_gradients([](const std::vector<Tensor>& v) { return max_pool2d(v[0], 2); }, {d.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return max_pool2d(v[0], 3, 2, 1); }, {d.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return avg_pool2d(v[0], 2); }, {d.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return avg_pool2d(v[0], 3, 1, 1); }, {d.clone()});
  check_gradients([](const std::vector<Tensor>& v) { return global_avg_pool2d(v[0]); }, {d.clone()});
  CHECK_THROWS_AS(max_pool2d(Tensor::zeros({2, 2}), 2), Error);
}

TEST_CASE("batch norm: training statistics, running stats, eval, gradients") {
  Tensor x = rnd({4, 3, 5, 5});
  Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
  Tensor gamma = Tensor::from_vector({3}, {1.f, 2.f, 0.5f}), beta = Tensor::from_vector({3}, {0.f, 1.f, -1.f});
  BatchNormOptions opt;
  Tensor y = batch_norm(x, gamma, beta, rm, rv, opt);
  // Each channel of y has mean beta and std gamma (biased).
  for (int c = 0; c < 3; ++c) {
    double s = 0, s2 = 0, xs = 0;
    for (int n = 0; n < 4; ++n)
      for (int j = 0; j < 25; ++j) {
        const float v = y.data()[(n * 3 + c) * 25 + j];
        s += v;
        s2 += v * v;
        xs += x.data()[(n * 3 + c) * 25 + j];
      }
    const double m = s / 100, var = s2 / 100 - m * m;
    CHECK(m == doctest::Approx(beta.data()[c]).epsilon(1e-4));
    CHECK(std::sqrt(var) == doctest::Approx(gamma.data()[c]).epsilon(1e-3));
    CHECK(rm.data()[c] == doctest::Approx(0.1 * xs / 100).epsilon(1e-4));
  }
  BatchNormOptions eval;
  eval.training = false;
  Tensor ye = batch_norm(x, gamma, beta, rm, rv, eval);
  const float expect = (x.data()[0] - rm.data()[0]) / std::sqrt(rv.data()[0] + 1e-5f) * gamma.data()[0] + beta.data()[0];
  CHECK(ye.data()[0] == doctest::Approx(expect).epsilon(1e-5));
  auto train_fn = [](const std::vector<Tensor>& v) {
    Tensor m = Tensor::zeros({3}), s = Tensor::ones({3});
    BatchNormOptions o;
    return batch_norm(v[0], v[1], v[2], m, s, o);
  };
  check_gradients(train_fn, {x.clone(), gamma.clone(), beta.clone()});
  auto eval_fn = [rm, rv](const std::vector<Tensor>& v) {
    BatchNormOptions o;
    o.training = false;
    return batch_norm(v[0], v[1], v[2], rm, rv, o);
  };
  check_gradients(eval_fn, {x.clone(), gamma.clone(), beta.clone()});
  check_gradients(train_fn, {rnd({6, 3}), gamma.clone(), beta.clone()});

  // Fused ReLU equals batch_norm followed by relu, in values and gradients.
  Tensor rm2 = Tensor::zeros({3}), rv2 = Tensor::ones({3});
  BatchNormOptions fused;
  fused.fused_relu = true;
  Tensor yf = batch_norm(x, gamma, beta, rm2, rv2, fused);
  Tensor rm3 = Tensor::zeros({3}), rv3 = Tensor::ones({3});
  Tensor yr = relu(batch_norm(x, gamma, beta, rm3, rv3, BatchNormOptions{}));
  CHECK(yf.to_vector() == yr.to_vector());
  auto fused_fn = [](const std::vector<Tensor>& v) {
    Tensor m = Tensor::zeros({3}), s = Tensor::ones({3});
    BatchNormOptions o;
    o.fused_relu = true;
    return batch_norm(v[0], v[1], v[2], m, s, o);
  };
  auto unfused_fn = [](const std::vector<Tensor>& v) {
    Tensor m = Tensor::zeros({3}), s = Tensor::ones({3});
    return relu(batch_norm(v[0], v[1], v[2], m, s, BatchNormOptions{}));
  };
  std::vector<Tensor> a{x.clone(), gamma.clone(), beta.clone()}, b{x.clone(), gamma.clone(), beta.clone()};
  for (auto& t : a) t.set_requires_grad(true);
  for (auto& t : b) t.set_requires_grad(true);
  Generator gr(3);
  const Tensor r = Tensor::randn(x.shape(), gr);
  fused_fn(a).backward(r);
  unfused_fn(b).backward(r);
  for (int i = 0; i < 3; ++i)
    for (int64_t j = 0; j < a[i].numel(); ++j)
      CHECK(a[i].grad().data()[j] == doctest::Approx(b[i].grad().data()[j]).epsilon(1e-4));
  check_gradients(fused_fn, {x.clone(), gamma.clone(), beta.clone()}, {1e-3f});
}

TEST_CASE("log_softmax and cross entropy: stable, correct, gradients") {
  Tensor z = Tensor::from_vector({2, 3}, {1000.f, 1001.f, 1002.f, -5.f, 0.f, 5.f});
  Tensor lp = log_softmax(z);
  CHECK(lp.data()[2] == doctest::Approx(-0.40760596f));
  CHECK(std::isfinite(cross_entropy(z, {2, 0}).item()));
  Tensor logits = rnd({5, 4});
  const std::vector<int32_t> t = {0, 3, 1, 1, 2};
  check_gradients([](const std::vector<Tensor>& v) { return log_softmax(v[0]); }, {logits.clone()});
  check_gradients([t](const std::vector<Tensor>& v) { return cross_entropy(v[0], t); }, {logits.clone()});
  check_gradients([t](const std::vector<Tensor>& v) { return nll_loss(log_softmax(v[0]), t); }, {logits.clone()});
  CHECK(cross_entropy(logits, t).item() == doctest::Approx(nll_loss(log_softmax(logits), t).item()));
  CHECK(argmax_rows(z) == std::vector<int32_t>{2, 2});
  CHECK_THROWS_WITH_AS(cross_entropy(logits, {0, 1}), doctest::Contains("2 targets for 5 rows"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(logits, {0, 1, 2, 3, 4}), doctest::Contains("target 4"), Error);
}

TEST_CASE("dropout: inverted scaling, eval identity, gradient equals the mask") {
  Tensor x = Tensor::ones({1000});
  Generator g(5);
  Tensor y = dropout(x, 0.25f, true, g);
  int kept = 0;
  for (float v : y.to_vector()) {
    CHECK((v == 0.f || v == doctest::Approx(1.f / 0.75f)));
    kept += v != 0.f;
  }
  CHECK(kept > 700);
  CHECK(kept < 800);
  CHECK(dropout(x, 0.25f, false, g).same_storage(x));
  Tensor xr = rnd({50});
  xr.set_requires_grad(true);
  Generator g2(9);
  Tensor yr = dropout(xr, 0.5f, true, g2);
  sum(yr).backward();
  for (int64_t i = 0; i < 50; ++i) CHECK(xr.grad().data()[i] == (yr.data()[i] == 0.f ? 0.f : 2.f));
}

TEST_CASE("gradient checks catch a gradient that is 1 % off") {
  using lowbit::testing::gradient_error;
  const Tensor x = random_away_from({5, 7}, gen, -2.f, 2.f, {0.f});
  // An op whose backward is 1 % too large: forward 1.01 t - 0.01 t = tanh(x) (to float
  // rounding), backward 1.01 tanh'(x) since the second term is cut from the graph.
  auto tanh_grad_off = [](const std::vector<Tensor>& v) {
    const Tensor t = tanh(v[0]);
    return add(mul_scalar(t, 1.01f), mul_scalar(t, -0.01f).detach());
  };
  auto tanh_fn = [](const std::vector<Tensor>& v) { return tanh(v[0]); };
  CHECK(gradient_error(tanh_fn, {x.clone()}) <= 1.0);
  CHECK_FALSE(gradient_error(tanh_grad_off, {x.clone()}) <= 1.0);
  // Every family: the gradient as computed passes, the same gradient scaled by 1.01 or 0.99 fails.
  const std::vector<int32_t> t = {0, 3, 1, 1, 2};
  const Conv2dOptions o{1, 1, 1, 1};
  struct Case {
    std::string name;
    lowbit::testing::GradFn f;
    std::vector<Tensor> inputs;
  };
  const std::vector<Case> cases = {
      {"mul", [](const std::vector<Tensor>& v) { return mul(v[0], v[1]); }, {rnd({3, 4}), rnd({3, 4})}},
      {"matmul", [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]); }, {rnd({5, 7}), rnd({7, 3})}},
      {"conv2d", [o](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v[2], o); },
       {rnd({2, 3, 5, 5}), rnd({4, 3, 3, 3}), rnd({4})}},
      {"mean_dim", [](const std::vector<Tensor>& v) { return mean_dim(v[0], 1, true); }, {rnd({3, 4, 5})}},
      {"cross_entropy", [t](const std::vector<Tensor>& v) { return cross_entropy(v[0], t); }, {rnd({5, 4})}},
      {"batch_norm",
       [](const std::vector<Tensor>& v) {
         Tensor m = Tensor::zeros({3}), s = Tensor::ones({3});
         return batch_norm(v[0], v[1], v[2], m, s, BatchNormOptions{});
       },
       {rnd({4, 3, 3, 3}), rnd({3}), rnd({3})}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    CHECK(gradient_error(c.f, c.inputs) <= 1.0);
    CHECK_FALSE(gradient_error(c.f, c.inputs, {}, 7, 1.01) <= 1.0);
    CHECK_FALSE(gradient_error(c.f, c.inputs, {}, 7, 0.99) <= 1.0);
  }
}
