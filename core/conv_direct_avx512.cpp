// conv_direct_avx512.cpp: the direct-convolution kernels (conv_direct_kernels.inc) on AVX-512F:
// one zmm per 16-channel block; forward register block up to 28 pixels x 1 output block or 14 x 2
// (27 x 1 or 12 x 2 with the three weight vectors of a 3x3 row held; at most 31 of the 32 zmm),
// weight gradient 8 input channels x 2 output blocks (16 accumulators; 16 x 1 when there is one
// output block), 3x3 with tap reuse 4 x 2 x 3 columns (8 x 1 x 3).
#include <immintrin.h>

#include <algorithm>
#include <array>

#include "core/conv_direct.h"

namespace {
struct V {
  static __m512 zero() { return _mm512_setzero_ps(); }
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static __m512 fma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
  static void store(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
};
constexpr int kMaxOutBlocks = 2;
// Accumulators + weight vectors within 30 zmm (one more for the broadcast, one spare: 31 spill);
// 28 pixels is a 28-wide row.
constexpr int max_pixels(int out_blocks, int kw) {
  const int weights = (kw == 0 ? 1 : kw) * out_blocks;
  return std::min(28, (30 - weights) / out_blocks);
}
constexpr int kMaxGradOutBlocks = 2;
// Weight-gradient accumulators: 16 per-column ones (one output block: 16 channels, two: 8), or
// with tap reuse (kw columns held) at most 24, leaving the dy vectors of a step and a broadcast
// within 32 zmm (3x3: 8 channels x 1 block, 4 x 2).
constexpr int grad_channels(int out_blocks, int kw) {
  return kw == 0 ? 16 / out_blocks : std::min(16, 24 / (kw * out_blocks));
}
// 3x3: 8 channels x 1 block (28 vectors) keep their dy window, 4 x 2 at stride 1 (31) would spill
// (bench fconv: 3 % slower there, 9 % faster for 8 x 1).
constexpr int kGradWindowVectors = 30;
}  // namespace

#include "core/conv_direct_kernels.inc"

namespace {
// In-register transpose of 16 rows of 16 floats: four rounds, round k swapping bit k of the row
// index with bit k of the column index (one vpermt2ps per row and round). Fully unrolled, so the
// 16 rows stay in registers.
template <int D>
__attribute__((always_inline)) inline void transpose_round(__m512 m[16]) {
  alignas(64) static constexpr auto lo_idx = [] {
    std::array<int, 16> a{};
    for (int c = 0; c < 16; ++c) a[c] = (c & D) ? 16 + c - D : c;  // row r (bit clear): own or row r+D's
    return a;
  }();
  alignas(64) static constexpr auto hi_idx = [] {
    std::array<int, 16> a{};
    for (int c = 0; c < 16; ++c) a[c] = (c & D) ? 16 + c : c + D;  // row r+D
    return a;
  }();
  const __m512i lo = _mm512_load_si512(lo_idx.data()), hi = _mm512_load_si512(hi_idx.data());
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) {
    if (r & D) continue;
    const __m512 a = m[r], b = m[r + D];
    m[r] = _mm512_permutex2var_ps(a, lo, b);
    m[r + D] = _mm512_permutex2var_ps(a, hi, b);
  }
}

__attribute__((always_inline)) inline void transpose16(__m512 m[16]) {
  transpose_round<1>(m);
  transpose_round<2>(m);
  transpose_round<4>(m);
  transpose_round<8>(m);
}

__mmask16 first_n(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

void pack_avx512(const float* x, int64_t c, int64_t h, int64_t w, int64_t dilation, int64_t pad_top,
                 int64_t pad_left, int64_t out_h, int64_t out_w, float* out) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t cb = 0; cb < lowbit::direct_conv::blocks_of(c); ++cb) {
    const int64_t channels = std::min(B, c - cb * B);
    for (int64_t oh = 0; oh < out_h; ++oh) {
      float* row = out + (cb * out_h + oh) * out_w * B;
      const int64_t q = oh - pad_top, ih = q / dilation;
      if (q < 0 || q % dilation != 0 || ih >= h) {
        for (int64_t j = 0; j < out_w; ++j) _mm512_storeu_ps(row + j * B, zero);
        continue;
      }
      // Columns the pixels do not cover: all of them when dilated, else the padding.
      const int64_t end = pad_left + (w - 1) * dilation + 1;
      for (int64_t j = 0; j < out_w; ++j)
        if (dilation > 1 || j < pad_left || j >= end) _mm512_storeu_ps(row + j * B, zero);
      for (int64_t iw0 = 0; iw0 < w; iw0 += B) {
        const int64_t n = std::min(B, w - iw0);
        __m512 v[16];
        for (int64_t i = 0; i < 16; ++i)
          v[i] = i < channels ? _mm512_maskz_loadu_ps(first_n(n), x + ((cb * B + i) * h + ih) * w + iw0) : zero;
        transpose16(v);
        for (int64_t p = 0; p < n; ++p) _mm512_storeu_ps(row + (pad_left + (iw0 + p) * dilation) * B, v[p]);
      }
    }
  }
}

void unpack_avx512(const float* blk, int64_t c, int64_t h, int64_t w, const float* bias, float* y) {
  const int64_t hw = h * w;
  for (int64_t cb = 0; cb < lowbit::direct_conv::blocks_of(c); ++cb) {
    const int64_t channels = std::min(B, c - cb * B);
    const float* src = blk + cb * hw * B;
    for (int64_t j0 = 0; j0 < hw; j0 += B) {
      const int64_t n = std::min(B, hw - j0);
      __m512 v[16];
      for (int64_t p = 0; p < 16; ++p) v[p] = p < n ? _mm512_loadu_ps(src + (j0 + p) * B) : _mm512_setzero_ps();
      transpose16(v);
      for (int64_t i = 0; i < channels; ++i) {
        const int64_t ch = cb * B + i;
        const __m512 out = bias ? _mm512_add_ps(v[i], _mm512_set1_ps(bias[ch])) : v[i];
        _mm512_mask_storeu_ps(y + ch * hw + j0, first_n(n), out);
      }
    }
  }
}
}  // namespace

namespace lowbit::direct_conv {
Kernels avx512_kernels() { return {forward_image, forward_strided, weight_grad, pack_avx512, unpack_avx512}; }
}  // namespace lowbit::direct_conv
