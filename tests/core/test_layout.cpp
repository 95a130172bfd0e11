// test_layout.cpp: the nchw16c activation layout (core/layout.h). Every op that knows it gives,
// on a blocked input, the values and gradients it gives on the same nchw input (bit for bit
// where the summation order is the same, within float rounding for batch norm's sums), its
// gradients pass the finite-difference check, and an op that does not know it reads row-major
// values through data().
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>

#include "common/gradcheck.h"
#include "core/cpu_features.h"
#include "core/layout.h"
#include "core/ops_conv.h"
#include "core/ops_elementwise.h"
#include "core/ops_norm.h"
#include "core/ops_pool.h"
#include "core/ops_reduce.h"

using namespace lowbit;
using lowbit::testing::check_gradients;

namespace {
Generator gen(321);
Tensor rnd(const Shape& s) { return Tensor::randn(s, gen); }

Tensor blocked(const Tensor& x) { return to_layout(x, Layout::nchw16c); }

// Runs f on the inputs as given and with input 0 blocked; compares outputs and every input's
// gradient (max |a - b| / (1 + |b|) <= tol; 0 = bit for bit).
void check_same_in_both_layouts(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> in,
                                float tol = 0.f, bool stays_blocked = true) {
  std::vector<std::vector<float>> out, grads;
  for (bool block : {false, true}) {
    for (auto& t : in) {
      t.set_requires_grad(true);
      t.set_grad(Tensor());
    }
    std::vector<Tensor> args = in;
    if (block) args[0] = blocked(in[0]);
    const Tensor y = f(args);
    if (block && stays_blocked && can_block(y.shape())) CHECK(y.layout() == Layout::nchw16c);
    Generator g(5);
    y.backward(Tensor::randn(y.shape(), g));
    out.push_back(y.to_vector());
    for (auto& t : in) grads.push_back(t.grad().to_vector());
  }
  auto close = [tol](const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    float worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]) / (1.f + std::fabs(b[i])));
    return worst <= tol;
  };
  CHECK(close(out[1], out[0]));
  for (size_t i = 0; i < in.size(); ++i) CHECK(close(grads[in.size() + i], grads[i]));
}
}  // namespace

TEST_CASE("to_layout round trip, its gradient, and data() on a blocked tensor") {
  const Tensor x = rnd({3, 32, 5, 7});
  const Tensor b = blocked(x);
  CHECK(b.layout() == Layout::nchw16c);
  // As stored: channel c of pixel j of image n at ((n * 2 + c / 16) * 35 + j) * 16 + c % 16.
  CHECK(b.raw_data()[((1 * 2 + 1) * 35 + 9) * 16 + 3] == x.data()[(1 * 32 + 19) * 35 + 9]);
  CHECK(to_layout(b, Layout::nchw).to_vector() == x.to_vector());
  CHECK(b.clone().layout() == Layout::nchw16c);
  Tensor view = b.detach();
  CHECK(b.to_vector() == x.to_vector());  // data(): row-major, converting the shared storage once
  CHECK(b.layout() == Layout::nchw);
  CHECK(view.layout() == Layout::nchw);
  check_gradients([](const std::vector<Tensor>& v) { return mul(blocked(v[0]), blocked(v[0])); }, {rnd({2, 16, 3, 3})});
  CHECK_THROWS_WITH(Tensor::empty({2, 20, 3, 3}, Layout::nchw16c),
                    doctest::Contains("cannot be stored nchw16c: it needs [N, C, H, W] with C a positive multiple of 16"));
}

TEST_CASE("conv2d: blocked in and out, the same bits as nchw") {
  if (kernels::active_isa_level() == kernels::Isa::scalar) return;  // im2col: nchw only
  struct Case {
    Shape x;
    int64_t cout, k, stride, pad;
  };
  for (const Case& c : {Case{{3, 16, 7, 9}, 32, 3, 1, 1}, Case{{2, 32, 9, 7}, 16, 3, 2, 1}, Case{{2, 16, 1, 1}, 16, 1, 1, 0},
                        Case{{3, 16, 7, 7}, 20, 3, 2, 0}, Case{{2, 16, 6, 6}, 32, 1, 2, 0}}) {
    CAPTURE(to_string(c.x));
    Tensor w = rnd({c.cout, c.x[1], c.k, c.k}), b = rnd({c.cout});
    const Conv2dOptions opt{c.stride, c.pad, 1, 1};
    check_same_in_both_layouts([opt](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v[2], opt); },
                               {rnd(c.x), w, b});
    check_gradients([opt](const std::vector<Tensor>& v) { return conv2d(blocked(v[0]), v[1], v[2], opt); },
                    {rnd(c.x), w, b});
  }
  // A conv whose output cannot be blocked (20 channels) writes nchw from a blocked input.
  const Tensor y = conv2d(blocked(rnd({1, 16, 5, 5})), rnd({20, 16, 3, 3}), Tensor(), {1, 1, 1, 1});
  CHECK(y.layout() == Layout::nchw);
}

TEST_CASE("batch_norm (training, eval, fused ReLU) on blocked inputs") {
  for (bool training : {true, false})
    for (bool relu_out : {false, true}) {
      CAPTURE(training);
      CAPTURE(relu_out);
      BatchNormOptions opt;
      opt.training = training;
      opt.fused_relu = relu_out;
      const Tensor gamma = rnd({32}), beta = rnd({32});
      auto f = [opt](const std::vector<Tensor>& v) {
        Tensor rm = Tensor::zeros({32}), rv = Tensor::ones({32});
        return batch_norm(v[0], v[1], v[2], rm, rv, opt);
      };
      // 9 images: more than one reduction chunk; 5x3 pixels: not a multiple of the 4 partials.
      check_same_in_both_layouts(f, {rnd({9, 32, 5, 3}), gamma, beta}, 2e-5f);
      // The ReLU's kink is where bn(x) = 0, which no input choice keeps away from: the fused
      // ReLU's gradient is the nchw one (above), checked in test_ops.
      if (!relu_out)
        check_gradients([f](const std::vector<Tensor>& v) { return f({blocked(v[0]), v[1], v[2]}); },
                        {rnd({3, 32, 2, 3}), gamma, beta});
    }
}

TEST_CASE("pooling, ReLU, residual add on blocked inputs: the same bits") {
  check_same_in_both_layouts([](const std::vector<Tensor>& v) { return max_pool2d(v[0], 2, 2, 0); }, {rnd({2, 16, 7, 6})});
  check_same_in_both_layouts([](const std::vector<Tensor>& v) { return max_pool2d(v[0], 3, 2, 1); }, {rnd({2, 32, 5, 5})});
  check_same_in_both_layouts([](const std::vector<Tensor>& v) { return global_avg_pool2d(v[0]); }, {rnd({3, 32, 3, 5})});
  check_same_in_both_layouts([](const std::vector<Tensor>& v) { return relu(v[0]); }, {rnd({2, 16, 3, 3})});
  check_same_in_both_layouts([](const std::vector<Tensor>& v) { return add_relu(v[0], blocked(v[1])); },
                             {rnd({2, 16, 3, 3}), rnd({2, 16, 3, 3})});
  // Mixed layouts: correct values, row-major result.
  check_same_in_both_layouts([](const std::vector<Tensor>& v) { return add_relu(v[0], v[1]); },
                             {rnd({2, 16, 3, 3}), rnd({2, 16, 3, 3})}, 0.f, /*stays_blocked=*/false);
  check_gradients([](const std::vector<Tensor>& v) { return max_pool2d(blocked(v[0]), 2, 2, 0); },
                  {rnd({2, 16, 4, 4})});
  check_gradients([](const std::vector<Tensor>& v) { return global_avg_pool2d(blocked(v[0])); }, {rnd({2, 16, 3, 2})});
}
