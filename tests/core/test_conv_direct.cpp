// test_conv_direct.cpp: the direct convolution (core/conv_direct.h) at every ISA level this CPU
// has (avx_vnni: the avx2 kernels, checked by identity and one run): conv2d's forward, input
// gradient and weight gradient bit-identical to the plain-loop references on odd shapes
// (channels not a multiple of 16, 1x1 images, stride 2 with odd sizes, rows wider than a
// register block, more than one reduction chunk), and finite-difference gradient checks through
// the op; backward-data by phases (BackwardDataPlan, backward_data_image) bit-identical to the
// reference, every dx pixel and tail lane written.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/gradcheck.h"
#include "core/conv_direct.h"
#include "core/deterministic_sum.h"
#include "core/ops_conv.h"
#include "core/ops_elementwise.h"
#include "core/ops_reduce.h"

using namespace lowbit;
using kernels::Isa;
using lowbit::testing::check_gradients;

namespace {
Generator gen(321);
Tensor rnd(const Shape& s) { return Tensor::randn(s, gen); }

struct Case {
  int64_t n, cin, h, w, cout, k, stride, pad;
};
const Case kCases[] = {
    {1, 1, 1, 1, 1, 1, 1, 0},     // 1x1 image, 1x1 kernel
    {2, 1, 1, 1, 3, 3, 1, 1},     // 1x1 image, 3x3 kernel: all but the centre tap read padding
    {2, 3, 7, 6, 5, 3, 1, 1},     // tails everywhere
    {3, 17, 9, 11, 33, 3, 2, 1},  // stride 2, odd sizes, 2 and 3 channel blocks
    {2, 16, 5, 5, 16, 1, 1, 0},   // 1x1, exact blocks
    {1, 20, 8, 7, 18, 1, 2, 0},   // 1x1 stride 2 (a ResNet shortcut), odd width
    {2, 3, 15, 13, 8, 7, 2, 3},   // 7x7 stride 2 (an ImageNet stem)
    {1, 35, 6, 30, 19, 3, 1, 1},  // rows wider than one register block
    {10, 5, 6, 6, 7, 3, 1, 1},    // more than one reduction chunk
    {2, 4, 4, 5, 3, 3, 1, 0},     // no padding
    {1, 2, 6, 6, 3, 3, 1, 2},     // padding k - 1
    {2, 4, 5, 6, 3, 3, 2, 3},     // padding past k - 1, stride 2 (backward-data's phases take it)
    {2, 64, 7, 7, 64, 3, 1, 1},   // ResNet stage 3
    {1, 16, 28, 28, 17, 3, 1, 1}, // a 28-pixel register block, then one of 1 output block
    {1, 5, 9, 29, 35, 3, 2, 1},   // 3x3 stride 2 tap reuse, 2 + 1 output blocks
    {1, 3, 6, 9, 5, 5, 1, 2},     // 5x5: the variant without tap reuse
};

// The levels with float kernels of their own (avx_vnni borrows avx2's, amx avx512's: both below).
std::vector<Isa> direct_isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::avx2, Isa::avx512})
    if (kernels::isa_supported(isa)) v.push_back(isa);
  return v;
}

bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, sizeof(float) * n) == 0; }

struct Restore {
  Isa saved = kernels::active_isa_level();
  ~Restore() { kernels::set_active_isa(saved); }
};
}  // namespace

TEST_CASE("direct conv2d: every ISA level equals the reference bit for bit") {
  Restore restore;
  const auto isas = direct_isas();
  if (isas.empty()) MESSAGE("skipped: this CPU has no AVX2, conv2d runs im2col + sgemm only");
  for (Isa isa : isas) {
    kernels::set_active_isa(isa);
    for (const Case& c : kCases) {
      CAPTURE(kernels::isa_name(isa));
      CAPTURE(c.n); CAPTURE(c.cin); CAPTURE(c.h); CAPTURE(c.w); CAPTURE(c.cout); CAPTURE(c.k); CAPTURE(c.stride);
      Tensor x = rnd({c.n, c.cin, c.h, c.w}), w = rnd({c.cout, c.cin, c.k, c.k});
      x.set_requires_grad(true);
      w.set_requires_grad(true);
      const Conv2dOptions o{c.stride, c.pad, 1, 1};
      Tensor y = conv2d(x, w, Tensor(), o);
      const int64_t ho = y.size(2), wo = y.size(3);
      std::vector<float> ref(static_cast<size_t>(y.numel()));
      direct_conv::conv_reference_forward(x.data(), w.data(), ref.data(), c.n, c.cin, c.h, c.w, c.cout, c.k, c.k,
                                          c.stride, c.pad);
      CHECK(same_bits(y.data(), ref.data(), y.numel()));

      Tensor gy = rnd(y.shape());
      sum(y * gy).backward();
      std::vector<float> dx(static_cast<size_t>(x.numel()));
      direct_conv::conv_reference_backward_data(gy.data(), w.data(), dx.data(), c.n, c.cin, c.h, c.w, c.cout,
                                                c.k, c.k, c.stride, c.pad);
      CHECK(same_bits(x.grad().data(), dx.data(), x.numel()));

      // The weight gradient: per 8-image chunk the reference sum, then the fixed tree.
      const int64_t leaves = reduce_leaves(c.n), wn = w.numel(), in_img = c.cin * c.h * c.w;
      std::vector<float> parts(static_cast<size_t>(leaves * wn));
      for (int64_t l = 0; l < leaves; ++l) {
        const int64_t n0 = l * kReduceChunkImages, nb = std::min(kReduceChunkImages, c.n - n0);
        direct_conv::conv_reference_weight_grad(x.data() + n0 * in_img, gy.data() + n0 * c.cout * ho * wo,
                                                parts.data() + l * wn, nb, c.cin, c.h, c.w, c.cout, c.k, c.k,
                                                c.stride, c.pad);
      }
      tree_sum_rows(parts.data(), leaves, wn);
      CHECK(same_bits(w.grad().data(), parts.data(), wn));
    }
  }
}

TEST_CASE("backward-data by phases: every ISA level equals the reference bit for bit") {
  struct PhaseCase {
    int64_t n, cin, h, w, cout, kh, kw, stride, pad;
  };
  const PhaseCase cases[] = {
      {2, 5, 7, 9, 17, 3, 3, 2, 1},    // 3x3 stride 2 pad 1, odd sizes, channel tails
      {1, 17, 7, 9, 5, 3, 3, 2, 0},    // 3x3 stride 2 pad 0: a row and column no dy reaches
      {2, 33, 8, 8, 33, 3, 3, 2, 1},   // even sizes, 3 blocks both ways
      {1, 3, 15, 13, 8, 7, 7, 2, 3},   // 7x7 stride 2 pad 3 (an ImageNet stem)
      {2, 20, 8, 7, 18, 1, 1, 2, 0},   // 1x1 stride 2: three phases of zeros
      {1, 17, 7, 9, 33, 1, 1, 2, 0},   // 1x1 stride 2, odd sizes
      {1, 5, 1, 1, 17, 1, 1, 2, 0},    // 1x1 image, stride 2
      {2, 5, 1, 1, 5, 3, 3, 1, 1},     // 1x1 image, 3x3: only the centre tap
      {1, 33, 1, 1, 17, 3, 3, 2, 1},   // 1x1 image, stride 2
      {2, 17, 11, 10, 5, 3, 3, 3, 1},  // stride 3
      {1, 5, 10, 11, 17, 5, 5, 3, 2},  // 5x5 stride 3
      {1, 5, 7, 9, 17, 2, 3, 2, 1},    // 2x3 kernel
      {2, 17, 9, 11, 33, 3, 3, 1, 1},  // stride 1: the single phase
      {1, 16, 5, 30, 16, 3, 3, 1, 0},  // stride 1 pad 0, rows wider than a register block
      {1, 5, 6, 7, 5, 3, 3, 1, 2},     // stride 1 pad k - 1
      {1, 33, 28, 28, 16, 3, 3, 2, 1}, // resnet20's 28 -> 14
      {1, 5, 5, 6, 7, 3, 3, 2, 3},     // padding past k - 1
      {2, 5, 4, 4, 17, 1, 1, 1, 1},    // 1x1 with padding: the border of dx is zero
      // Weight-gradient tap-reuse blocks (3x3): channel groups of every size below the block
      // (13 -> 7 + 6 at one output block, 4 + 3 + 3 + 3 at two), three output blocks (two + one),
      // rows narrower than the steps where some columns meet no output, stride 2 odd widths.
      {2, 13, 9, 11, 17, 3, 3, 1, 1},  // 2 output blocks
      {1, 13, 7, 30, 40, 3, 3, 1, 1},  // 3 output blocks, a wide row
      {2, 11, 6, 9, 5, 3, 3, 2, 1},    // stride 2, groups 6 + 5
      {1, 27, 9, 13, 33, 3, 3, 2, 0},  // stride 2 pad 0, odd width: the last input column unread
      {2, 9, 3, 4, 9, 3, 3, 1, 0},     // out_w 2: no step without edges
      {1, 3, 4, 3, 20, 3, 3, 2, 0},    // stride 2, out_w 1
      {2, 5, 6, 7, 33, 3, 3, 1, 1},    // stride 1, fewer than 8 channels: blocks of 2 + 1 output blocks
  };
  const auto isas = direct_isas();
  if (isas.empty()) MESSAGE("skipped: this CPU has no AVX2, no direct kernels");
  for (const PhaseCase& c : cases) {
    CAPTURE(c.n); CAPTURE(c.cin); CAPTURE(c.h); CAPTURE(c.w); CAPTURE(c.cout); CAPTURE(c.kh); CAPTURE(c.kw);
    CAPTURE(c.stride); CAPTURE(c.pad);
    const int64_t ho = (c.h + 2 * c.pad - c.kh) / c.stride + 1, wo = (c.w + 2 * c.pad - c.kw) / c.stride + 1;
    Tensor dy = rnd({c.n, c.cout, ho, wo}), w = rnd({c.cout, c.cin, c.kh, c.kw});
    std::vector<float> ref(static_cast<size_t>(c.n * c.cin * c.h * c.w));
    direct_conv::conv_reference_backward_data(dy.data(), w.data(), ref.data(), c.n, c.cin, c.h, c.w, c.cout, c.kh,
                                              c.kw, c.stride, c.pad);
    const direct_conv::BackwardDataPlan plan(c.cin, c.h, c.w, c.cout, c.kh, c.kw, c.stride, c.pad, w.data());
    CHECK(plan.ho == ho);
    CHECK(plan.wo == wo);
    const int64_t B = direct_conv::kConvBlock, cbi = direct_conv::blocks_of(c.cin);
    const int64_t dy_floats = direct_conv::blocks_of(c.cout) * ho * wo * B, dx_floats = cbi * c.h * c.w * B;
    for (Isa isa : isas) {
      CAPTURE(kernels::isa_name(isa));
      const direct_conv::Kernels k = direct_conv::kernels_for(isa);
      std::vector<float> dyb(static_cast<size_t>(dy_floats)), got(ref.size());
      // NaN everywhere first: backward_data_image must write every dx float and read no stale scratch.
      std::vector<float> dxb(static_cast<size_t>(dx_floats)), scratch(static_cast<size_t>(plan.scratch_floats()));
      for (int64_t b = 0; b < c.n; ++b) {
        std::fill(dxb.begin(), dxb.end(), std::numeric_limits<float>::quiet_NaN());
        std::fill(scratch.begin(), scratch.end(), std::numeric_limits<float>::quiet_NaN());
        direct_conv::pack_activation(dy.data() + b * c.cout * ho * wo, c.cout, ho, wo, 1, 0, 0, ho, wo, dyb.data());
        direct_conv::backward_data_image(k, plan, dyb.data(), dxb.data(), scratch.data());
        bool tails_zero = true;
        for (int64_t j = 0; j < dx_floats; ++j) {
          const int64_t ch = (j / (c.h * c.w * B)) * B + j % B;
          if (ch >= c.cin && dxb[j] != 0.f) tails_zero = false;
        }
        CHECK(tails_zero);
        direct_conv::unpack_activation(dxb.data(), c.cin, c.h, c.w, nullptr, got.data() + b * c.cin * c.h * c.w);
        // dy packed straight into the scratch layout: the same dx.
        std::vector<float> dx_padded(dxb.size(), std::numeric_limits<float>::quiet_NaN());
        k.pack(dy.data() + b * c.cout * ho * wo, c.cout, ho, wo, 1, plan.pad_top, plan.pad_left, plan.padded_h,
               plan.padded_w, scratch.data());
        direct_conv::backward_data_image_padded(k, plan, scratch.data(), dx_padded.data());
        CHECK(same_bits(dx_padded.data(), dxb.data(), dx_floats));
      }
      CHECK(same_bits(got.data(), ref.data(), static_cast<int64_t>(ref.size())));

      // The weight gradient reads the same padded, undilated dy (what the op packs once for both).
      const direct_conv::ConvShape fwd{c.cin, c.h + 2 * c.pad, c.w + 2 * c.pad, c.cout, ho, wo, c.kh, c.kw, c.stride};
      const int64_t x_floats = cbi * fwd.in_h * fwd.in_w * B, dyp_floats = plan.scratch_floats();
      Tensor x = rnd({c.n, c.cin, c.h, c.w});
      std::vector<float> xb(static_cast<size_t>(c.n * x_floats)), dyp(static_cast<size_t>(c.n * dyp_floats));
      for (int64_t b = 0; b < c.n; ++b) {
        k.pack(x.data() + b * c.cin * c.h * c.w, c.cin, c.h, c.w, 1, c.pad, c.pad, fwd.in_h, fwd.in_w,
               xb.data() + b * x_floats);
        k.pack(dy.data() + b * c.cout * ho * wo, c.cout, ho, wo, 1, plan.pad_top, plan.pad_left, plan.padded_h,
               plan.padded_w, dyp.data() + b * dyp_floats);
      }
      const direct_conv::GradLayout dyl{dyp_floats, plan.padded_h * plan.padded_w * B, plan.padded_w * B, B};
      std::vector<float> dwb(static_cast<size_t>(direct_conv::blocks_of(c.cout) * cbi * c.kh * c.kw * B * B));
      std::vector<float> dw(static_cast<size_t>(w.numel())), dw_ref(dw.size());
      k.weight_grad(fwd, c.n, xb.data(), x_floats, dyp.data() + (plan.pad_top * plan.padded_w + plan.pad_left) * B,
                    dyl, dwb.data());
      direct_conv::unpack_weights(dwb.data(), c.cout, c.cin, c.kh, c.kw, dw.data());
      direct_conv::conv_reference_weight_grad(x.data(), dy.data(), dw_ref.data(), c.n, c.cin, c.h, c.w, c.cout, c.kh,
                                              c.kw, c.stride, c.pad);
      CHECK(same_bits(dw.data(), dw_ref.data(), w.numel()));
    }
  }
}

TEST_CASE("direct conv2d: gradient checks on odd shapes, with bias") {
  Restore restore;
  for (Isa isa : direct_isas()) {
    kernels::set_active_isa(isa);
    CAPTURE(kernels::isa_name(isa));
    for (const Case& c : {Case{2, 3, 5, 4, 17, 3, 2, 1}, Case{1, 18, 3, 3, 2, 1, 1, 0}, Case{1, 2, 1, 1, 3, 3, 1, 1}}) {
      const Conv2dOptions o{c.stride, c.pad, 1, 1};
      check_gradients([o](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v[2], o); },
                      {rnd({c.n, c.cin, c.h, c.w}), rnd({c.cout, c.cin, c.k, c.k}), rnd({c.cout})});
    }
  }
}

TEST_CASE("conv2d: the direct path and im2col + sgemm agree to rounding") {
  Restore restore;
  const Case c{3, 17, 9, 11, 33, 3, 2, 1};
  const Conv2dOptions o{c.stride, c.pad, 1, 1};
  Tensor x = rnd({c.n, c.cin, c.h, c.w}), w = rnd({c.cout, c.cin, c.k, c.k}), b = rnd({c.cout});
  kernels::set_active_isa(Isa::scalar);  // no direct kernels at this level: im2col + sgemm
  Tensor ref = conv2d(x, w, b, o);
  for (Isa isa : direct_isas()) {
    kernels::set_active_isa(isa);
    Tensor y = conv2d(x, w, b, o);
    for (int64_t i = 0; i < y.numel(); ++i) CHECK(y.data()[i] == doctest::Approx(ref.data()[i]).epsilon(1e-5));
  }
}

// Level `borrower` hands out `owner`'s float kernels. The mapping itself needs no CPU support:
// kernels_for only hands out function pointers.
namespace {
void check_same_kernels(Isa borrower, Isa owner) {
  const direct_conv::Kernels a = direct_conv::kernels_for(borrower), b = direct_conv::kernels_for(owner);
  // (( )): doctest cannot print function pointers, only the comparison's result.
  CHECK((a.forward == b.forward));
  CHECK((a.forward_strided == b.forward_strided));
  CHECK((a.weight_grad == b.weight_grad));
  CHECK((a.pack == b.pack));
  CHECK((a.unpack == b.unpack));
}
}  // namespace

TEST_CASE("direct conv2d: amx runs the avx512 float kernels") {
  // AMX tiles serve the integer convolution only: training at the amx level is the avx512 one.
  check_same_kernels(Isa::amx, Isa::avx512);
}

TEST_CASE("direct conv2d: avx_vnni runs the avx2 float kernels") {
  check_same_kernels(Isa::avx_vnni, Isa::avx2);
  if (!kernels::isa_supported(Isa::avx_vnni)) {
    MESSAGE("skipped the avx_vnni conv2d run: this CPU has no AVX-VNNI");
    return;
  }
  Restore restore;
  const Case c{3, 17, 9, 11, 33, 3, 2, 1};
  const Conv2dOptions o{c.stride, c.pad, 1, 1};
  Tensor x = rnd({c.n, c.cin, c.h, c.w}), w = rnd({c.cout, c.cin, c.k, c.k});
  kernels::set_active_isa(Isa::avx_vnni);
  Tensor y = conv2d(x, w, Tensor(), o);
  std::vector<float> ref(static_cast<size_t>(y.numel()));
  direct_conv::conv_reference_forward(x.data(), w.data(), ref.data(), c.n, c.cin, c.h, c.w, c.cout, c.k, c.k,
                                      c.stride, c.pad);
  CHECK(same_bits(y.data(), ref.data(), y.numel()));
}
