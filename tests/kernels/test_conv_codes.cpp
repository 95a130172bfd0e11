// test_conv_codes.cpp: the implicit-GEMM convolution on codes (quant/kernels/conv_codes.h)
// against the im2col + packed GEMM reference, bit for bit, for every ISA this CPU has, every
// epilogue kind and the weight grids of the zoo; its input checks.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "quant/kernels/conv_codes.h"
#include "quant/kernels/gemm.h"
#include "common/isa_levels.h"

using namespace lowbit::kernels;
using lowbit::test::available_isas;

namespace {

struct Case {
  int64_t c, h, w, kernel, stride, pad, cout;
  int abits, wbits;
  int32_t acc_mul, rowsum_mul;  // the grid: odd 2m - n, signed m - 2^(b-1), unsigned m
};

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p) { return (in + 2 * p - k) / s + 1; }

struct Problem {
  Case cs;
  int64_t hp, wp, oh, ow, k;
  std::vector<uint8_t> x;  // bordered NHWC, images of hp x wp x c
  PackedWeights w;
  std::vector<float> scale, bias;
  int64_t images = 2;
};

Problem make_problem(const Case& cs, uint32_t seed) {
  Problem p;
  p.cs = cs;
  p.hp = cs.h + 2 * cs.pad;
  p.wp = cs.w + 2 * cs.pad;
  p.oh = out_size(cs.h, cs.kernel, cs.stride, cs.pad);
  p.ow = out_size(cs.w, cs.kernel, cs.stride, cs.pad);
  p.k = cs.kernel * cs.kernel * cs.c;
  std::mt19937 rng(seed);
  const int amax = max_code(cs.abits), zp = amax / 3;
  p.x.assign(static_cast<size_t>(p.images * p.hp * p.wp * cs.c), static_cast<uint8_t>(zp));
  for (int64_t i = 0; i < p.images; ++i)
    for (int64_t y = 0; y < cs.h; ++y)
      for (int64_t xx = 0; xx < cs.w; ++xx)
        for (int64_t c = 0; c < cs.c; ++c)
          p.x[static_cast<size_t>(((i * p.hp + y + cs.pad) * p.wp + xx + cs.pad) * cs.c + c)] =
              static_cast<uint8_t>(rng() % (amax + 1));
  std::vector<uint8_t> wc(static_cast<size_t>(cs.cout * p.k));
  for (auto& v : wc) v = static_cast<uint8_t>(rng() % (max_code(cs.wbits) + 1));
  p.w = pack_weights(wc.data(), cs.cout, p.k, p.k, cs.wbits);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t n = 0; n < cs.cout; ++n) {
    p.scale.push_back(0.05f + 0.01f * u(rng));
    p.bias.push_back(1.5f + u(rng));
  }
  return p;
}

// The im2col matrix of the bordered images (k = (kh*K + kw)*C + c), then the scalar GEMM.
std::vector<uint8_t> reference(const Problem& p, const Epilogue& ep, size_t out_bytes) {
  const Case& cs = p.cs;
  const int64_t m = p.images * p.oh * p.ow;
  std::vector<uint8_t> cols(static_cast<size_t>(m * p.k));
  for (int64_t i = 0; i < p.images; ++i)
    for (int64_t y = 0; y < p.oh; ++y)
      for (int64_t xx = 0; xx < p.ow; ++xx)
        for (int64_t kh = 0; kh < cs.kernel; ++kh)
          for (int64_t kw = 0; kw < cs.kernel; ++kw)
            for (int64_t c = 0; c < cs.c; ++c)
              cols[static_cast<size_t>(((i * p.oh + y) * p.ow + xx) * p.k + (kh * cs.kernel + kw) * cs.c + c)] =
                  p.x[static_cast<size_t>(((i * p.hp + y * cs.stride + kh) * p.wp + xx * cs.stride + kw) * cs.c + c)];
  const int pbits = cs.abits <= 2 ? 2 : cs.abits <= 4 ? 4 : 8;
  PackedActivations a = pack_activations(cols.data(), m, p.k, p.k, pbits);
  Epilogue e = ep;
  e.acc_mul = cs.acc_mul;
  e.rowsum_mul = cs.rowsum_mul;
  std::vector<uint8_t> out(static_cast<size_t>(m * cs.cout) * out_bytes, 0xAB);
  gemm_reference(a, p.w, e, out.data(), cs.cout);
  return out;
}


}  // namespace

TEST_CASE("conv_codes equals im2col + the reference GEMM bit for bit, every ISA and epilogue") {
  const std::vector<Case> cases = {
      {16, 28, 28, 3, 1, 1, 16, 2, 2, 2, -3},   // resnet20 stage 1, SAWB odd grid
      {16, 28, 28, 3, 2, 1, 32, 2, 2, 2, -3},   // stride-2 transition
      {16, 28, 28, 1, 2, 0, 32, 2, 2, 2, -3},   // 1x1 stride-2 shortcut
      {32, 14, 14, 3, 1, 1, 32, 2, 2, 2, -3},
      {64, 7, 7, 3, 1, 1, 64, 4, 4, 2, -15},    // W4A4 odd grid
      {64, 7, 7, 3, 1, 1, 48, 4, 4, 1, -8},     // signed 4-bit grid (LSQ/QIL), 3 blocks
      {32, 9, 13, 3, 1, 1, 20, 8, 2, 2, -3},    // 8-bit codes, partial last block
      {12, 5, 30, 3, 1, 0, 8, 2, 4, 1, 0},      // unsigned grid, narrow output, 30-wide rows
      {4, 3, 3, 3, 1, 1, 17, 4, 2, 1, -2},
      {8, 31, 17, 3, 2, 1, 40, 2, 2, 2, -3},
      {1, 28, 28, 3, 1, 1, 32, 8, 8, 2, -255},  // a first layer: one channel, 8-bit odd grid (split)
      {3, 11, 9, 3, 2, 1, 16, 8, 8, 2, -255},   // three channels, stride 2
      {6, 7, 7, 3, 1, 1, 24, 4, 8, 2, -256},    // split with an even offset (no window term)
      {5, 6, 6, 1, 1, 0, 16, 8, 8, 1, -128},    // signed 8-bit grid: direct, padded channels
      {96, 6, 5, 3, 1, 1, 40, 2, 2, 2, -3},     // taps wider than a zmm (AMX gather), k = 864
      {40, 9, 7, 3, 2, 1, 33, 4, 4, 1, -8},     // 40 channels per tap, k = 360 (AMX zero tail)
      // The pair tables (2-bit codes): odd sizes, strides 1-3, one channel pair, 1x1 images, a
      // K long enough for several 16-bit segments, ternary and unsigned grids (no window row).
      {2, 1, 1, 3, 1, 1, 5, 2, 2, 2, -3},       // one pair, a 1x1 image: 1 output of 3x3 virtual
      {6, 17, 3, 3, 3, 1, 9, 2, 2, 2, -3},      // stride 3, 9 phases
      {4, 63, 65, 1, 1, 0, 7, 2, 2, 1, -2},     // 1x1 stride 1, 4095 outputs, 7 channels
      {8, 13, 11, 5, 2, 2, 24, 2, 2, 1, -1},    // 5x5 stride 2, ternary-like grid m - 1
      {1000, 3, 3, 3, 1, 1, 17, 2, 2, 2, -3},   // K = 9000: 4500 steps, more than one segment
      {20, 9, 9, 3, 1, 1, 16, 1, 2, 1, 0},      // 1-bit codes, unsigned weights: no window row
  };
  // Codes for a 2-bit and an 8-bit next layer (the AVX-512 codes epilogue narrows with saturating
  // packs: both ends of the clamp must hold at either bound).
  const std::pair<EpilogueKind, int> kinds[] = {
      {EpilogueKind::int32, 3}, {EpilogueKind::float32, 3}, {EpilogueKind::codes, 3}, {EpilogueKind::codes, 255}};
  std::map<std::string, int> runs;
  uint32_t seed = 1;
  for (const Case& cs : cases) {
    const Problem p = make_problem(cs, seed++);
    REQUIRE(conv_codes_fits(p.w, cs.acc_mul, cs.rowsum_mul, cs.c));
    const ConvCodesWeights cw = pack_conv_codes_weights(p.w, cs.acc_mul, cs.rowsum_mul, cs.c, cs.kernel, cs.abits);
    // The kernels' input: channels padded to a multiple of 4 with code 0.
    const int64_t c4 = cw.in_channels;
    CHECK(c4 == (cs.c + 3) / 4 * 4);
    std::vector<uint8_t> x4(static_cast<size_t>(p.images * p.hp * p.wp * c4), 0);
    for (int64_t px = 0; px < p.images * p.hp * p.wp; ++px)
      std::memcpy(&x4[static_cast<size_t>(px * c4)], &p.x[static_cast<size_t>(px * cs.c)], static_cast<size_t>(cs.c));
    ConvCodesShape s;
    s.channels = c4;
    s.height = p.hp;
    s.width = p.wp;
    s.stride = cs.stride;
    s.out_height = p.oh;
    s.out_width = p.ow;
    s.act_bits = cs.abits;
    for (const auto& [kind, max_code_out] : kinds) {
      Epilogue ep;
      ep.kind = kind;
      // For 8-bit codes a 40x steeper scale, so that sums also pass 255 (and stay below 0).
      std::vector<float> steep(p.scale);
      for (float& v : steep) v *= 40.f;
      ep.scale = max_code_out == 255 ? steep.data() : p.scale.data();
      ep.bias = p.bias.data();
      ep.max_code_out = max_code_out;
      const size_t bytes = kind == EpilogueKind::codes ? 1 : 4;
      const std::vector<uint8_t> want = reference(p, ep, bytes);
      for (Isa isa : available_isas()) {
        CAPTURE(cs.c);
        CAPTURE(cs.kernel);
        CAPTURE(cs.stride);
        CAPTURE(cs.cout);
        CAPTURE(cs.abits);
        CAPTURE(static_cast<int>(kind));
        CAPTURE(max_code_out);
        CAPTURE(std::string(isa_name(isa)));
        if (!conv_codes_supported(isa, cw, cs.abits)) {  // AVX2's int16 pair bound: the GEMM path
          CHECK(isa == Isa::avx2);
          CHECK(max_code(cs.abits) * cw.max_pair_abs > 32767);
          continue;
        }
        // Every kernel of the level whose rule holds, not only the one conv_codes_at prefers.
        const ConvCodesKernelTable table = conv_codes_kernels(isa);
        for (int ki = 0; ki < table.count; ++ki) {
          const ConvCodesKernel& kernel = table.rows[ki];
          if (!kernel.applies(cw, cs.abits)) continue;
          CAPTURE(std::string(kernel.name));
          ++runs[kernel.name];
          std::vector<uint8_t> got(want.size(), 0xAB);
          conv_codes_with(kernel, x4.data(), p.images, s, cw, ep, got.data(), cs.cout);
          CHECK(std::memcmp(got.data(), want.data(), want.size()) == 0);
          if (kind != EpilogueKind::float32) continue;
          // The fused residual add + ReLU equal the separate ops on the unfused output (negative
          // zeros included: -0 passes ReLU as in std::max).
          std::vector<float> y(want.size() / 4), res(y.size()), fused(y.size());
          std::memcpy(y.data(), want.data(), want.size());
          for (size_t i = 0; i < res.size(); ++i) res[i] = i % 7 == 0 ? -y[i] : 0.37f * static_cast<float>(i % 11) - 2.f;
          res[0] = -0.f;
          for (size_t i = 0; i < y.size(); ++i) y[i] = std::max(y[i] + res[i], 0.f);
          ConvCodesFusion fuse;
          fuse.residual = res.data();
          fuse.relu = true;
          // ... and the codes of the result under two quantizers, as quantize_codes computes them.
          const CodeMap pact{CodeMap::Form::clip_then_multiply, 0.f, 2.5f, 3.f / 2.5f};
          const CodeMap lsq{CodeMap::Form::divide_then_clip, 0.f, 15.f, 0.21f};
          std::vector<uint8_t> want_a(y.size()), want_b(y.size()), got_a(y.size(), 0xAB), got_b(y.size(), 0xAB);
          quantize_codes_reference(pact, y.data(), static_cast<int64_t>(y.size()), want_a.data());
          quantize_codes_reference(lsq, y.data(), static_cast<int64_t>(y.size()), want_b.data());
          fuse.codes[0] = {pact, got_a.data()};
          fuse.codes[1] = {lsq, got_b.data()};
          fuse.code_outputs = 2;
          conv_codes_with(kernel, x4.data(), p.images, s, cw, ep, fused.data(), cs.cout, fuse);
          CHECK(std::memcmp(fused.data(), y.data(), y.size() * 4) == 0);
          CHECK(got_a == want_a);
          CHECK(got_b == want_b);
        }
      }
    }
  }
  // Each kernel of the tables ran on some case (where its level is available).
  for (Isa isa : available_isas()) {
    const ConvCodesKernelTable table = conv_codes_kernels(isa);
    for (int ki = 0; ki < table.count; ++ki) {
      CAPTURE(std::string(table.rows[ki].name));
      CHECK(runs[table.rows[ki].name] > 0);
    }
  }
}

TEST_CASE("conv_codes refuses what it cannot compute exactly") {
  const Problem p = make_problem({16, 6, 6, 3, 1, 1, 16, 2, 2, 2, -3}, 7);
  // 8-bit weights with acc_mul 1 and an offset beyond a byte (s = m - 200) fit neither way;
  // the 8-bit odd grid 2m - 255 fits split (s = 2 s' + 1), with the window term.
  std::vector<uint8_t> w8(16 * 144, 255);
  const PackedWeights pw8 = pack_weights(w8.data(), 16, 144, 144, 8);
  CHECK_FALSE(conv_codes_fits(pw8, 1, -200, 16));
  CHECK_THROWS_AS(pack_conv_codes_weights(pw8, 1, -200, 16, 3, 8), lowbit::Error);
  const ConvCodesWeights odd8 = pack_conv_codes_weights(pw8, 2, -255, 16, 3, 8);
  CHECK(odd8.split);
  CHECK(odd8.window_term == 1);
  CHECK(odd8.max_abs == 127);  // s' = m - 128 = 127 for code 255
  CHECK(odd8.max_pair_abs == 254);
  // K must be whole taps of in_channels.
  std::vector<uint8_t> w6(16 * 54, 1);
  CHECK_FALSE(conv_codes_fits(pack_weights(w6.data(), 16, 54, 54, 2), 2, -3, 4));
  // AVX2's vpmaddubsw pair bound: 8-bit codes x signed 8-bit weights could saturate int16.
  std::vector<uint8_t> ws(16 * 144, 200);
  const ConvCodesWeights big = pack_conv_codes_weights(pack_weights(ws.data(), 16, 144, 144, 8), 1, -128, 16, 3, 8);
  CHECK_FALSE(conv_codes_supported(Isa::avx2, big, 8));
  CHECK(conv_codes_supported(Isa::scalar, big, 8));

  const ConvCodesWeights cw = pack_conv_codes_weights(p.w, 2, -3, 16, 3, 2);
  ConvCodesShape s;
  s.channels = 16;
  s.height = p.hp;
  s.width = p.wp;
  s.out_height = p.oh + 1;  // one row more than the bordered input holds
  s.out_width = p.ow;
  s.act_bits = 2;
  Epilogue ep;
  std::vector<int32_t> out(static_cast<size_t>(2 * (p.oh + 1) * p.ow * 16));
  CHECK_THROWS_WITH_AS(conv_codes_at(Isa::scalar, p.x.data(), 2, s, cw, ep, out.data(), 16),
                       doctest::Contains("bordered input"), lowbit::Error);
  s.out_height = p.oh;
  ep.acc_mul = 2;
  CHECK_THROWS_WITH_AS(conv_codes_at(Isa::scalar, p.x.data(), 2, s, cw, ep, out.data(), 16),
                       doctest::Contains("acc_mul 1"), lowbit::Error);
  ep.acc_mul = 1;
  ConvCodesFusion relu_only;
  relu_only.relu = true;
  CHECK_THROWS_WITH_AS(conv_codes_at(Isa::scalar, p.x.data(), 2, s, cw, ep, out.data(), 16, relu_only),
                       doctest::Contains("float32 epilogue"), lowbit::Error);
}

TEST_CASE("fastest_conv_codes_kernel picks a row of the level's table whose rule holds") {
  const Problem p = make_problem({16, 9, 9, 3, 1, 1, 16, 2, 2, 2, -3}, 11);
  const ConvCodesWeights cw = pack_conv_codes_weights(p.w, 2, -3, 16, 3, 2);
  ConvCodesShape s;
  s.channels = 16;
  s.height = p.hp;
  s.width = p.wp;
  s.out_height = p.oh;
  s.out_width = p.ow;
  s.act_bits = 2;
  for (Isa isa : available_isas()) {
    CAPTURE(std::string(isa_name(isa)));
    const ConvCodesKernel* k = fastest_conv_codes_kernel(isa, s, cw, EpilogueKind::codes);
    REQUIRE(k != nullptr);
    CHECK(k->applies(cw, 2));
    const ConvCodesKernelTable t = conv_codes_kernels(isa);
    CHECK(std::any_of(t.rows, t.rows + t.count, [&](const ConvCodesKernel& r) { return &r == k; }));
  }
  // 8-bit codes x signed 8-bit weights: no AVX2 row holds them (the GEMM path).
  std::vector<uint8_t> ws(16 * 144, 200);
  const ConvCodesWeights big = pack_conv_codes_weights(pack_weights(ws.data(), 16, 144, 144, 8), 1, -128, 16, 3, 8);
  s.act_bits = 8;
  if (isa_supported(Isa::avx2)) CHECK(fastest_conv_codes_kernel(Isa::avx2, s, big, EpilogueKind::float32) == nullptr);
}
