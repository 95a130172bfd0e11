// conv_codes_avx2.cpp: the AVX2 kernel of conv_codes.h. Compiled with -mavx2 -mfma
// -ffp-contract=off only.
//
// A register tile is R = 5 pixels x 16 channels (10 ymm accumulators, two weight halves, the
// broadcast, the ones vector and a product: 15 of 16 ymm). Per tap and 4-channel group:
// vpmaddubsw(codes, s) adds two u8 x s8 products into int16 (exact: conv_codes_supported keeps
// 2 * max_code * max|s| <= 32767), vpmaddwd(., 1) widens the pair sums into int32 at once.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "quant/kernels/conv_codes_internal.h"

namespace lowbit::kernels::detail::avx2 {
namespace {

constexpr int kMaxPixels = 5;

inline __m256i bcast_dword(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// 8 channels [n0, n0 + 8) of one output pixel; the same operations as the scalar epilogue.
inline void store8(const ConvCodesProblem& p, int64_t pixel, int64_t n0, __m256i acc) {
  const int64_t valid = std::min<int64_t>(8, p.w->out_channels - n0);
  if (valid <= 0) return;
  alignas(32) int32_t ti[8];
  alignas(32) float tf[8];
  const int64_t off = pixel * p.ldo + n0;
  if (p.ep.kind == EpilogueKind::int32) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(ti), acc);
    std::memcpy(static_cast<int32_t*>(p.out) + off, ti, static_cast<size_t>(valid) * 4);
    return;
  }
  const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(p.scale_pad + n0));
  __m256 y = _mm256_add_ps(t, _mm256_loadu_ps(p.bias_pad + n0));
  if (p.ep.kind == EpilogueKind::float32) {
    if (p.fuse.residual) {
      if (valid < 8) _mm256_store_ps(tf, _mm256_setzero_ps());
      std::memcpy(tf, p.fuse.residual + off, static_cast<size_t>(valid) * 4);
      y = _mm256_add_ps(y, _mm256_load_ps(tf));
    }
    // y < 0 ? 0 : y, as std::max(y, 0.f) (-0 and NaN pass).
    if (p.fuse.relu) y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_LT_OQ));
    _mm256_store_ps(tf, y);
    for (int q = 0; q < p.fuse.code_outputs; ++q)  // the reference's expressions, 8 values at a time
      quantize_codes_reference(p.fuse.codes[q].map, tf, valid, p.fuse.codes[q].out + off);
    std::memcpy(static_cast<float*>(p.out) + off, tf, static_cast<size_t>(valid) * 4);
    return;
  }
  __m256 q = _mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  q = _mm256_min_ps(_mm256_max_ps(q, _mm256_setzero_ps()), _mm256_set1_ps(static_cast<float>(p.ep.max_code_out)));
  _mm256_store_si256(reinterpret_cast<__m256i*>(ti), _mm256_cvttps_epi32(q));
  uint8_t* dst = static_cast<uint8_t*>(p.out) + off;
  for (int64_t c = 0; c < valid; ++c) dst[c] = static_cast<uint8_t>(ti[c]);
}

template <int R>
void tile(const ConvCodesProblem& p, const uint8_t* x, int64_t pixel_step, int64_t nb, int64_t out_pixel0) {
  const ConvCodesWeights& w = *p.w;
  const int64_t C = p.shape.channels, K = w.kernel, line = p.shape.width * C, groups = C / 4;
  const int8_t* wb = w.block(nb);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[2 * R];
#pragma GCC unroll 16
  for (int i = 0; i < 2 * R; ++i) acc[i] = _mm256_setzero_si256();
  for (int64_t kh = 0; kh < K; ++kh)
    for (int64_t kw = 0; kw < K; ++kw) {
      const uint8_t* px = x + kh * line + kw * C;
      const int8_t* wt = wb + (kh * K + kw) * C * kBlockChannels;
      for (int64_t g = 0; g < groups; ++g) {
        const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wt + g * 64));
        const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wt + g * 64 + 32));
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const __m256i a = bcast_dword(px + r * pixel_step + 4 * g);
          acc[2 * r] = _mm256_add_epi32(acc[2 * r], _mm256_madd_epi16(_mm256_maddubs_epi16(a, w0), ones));
          acc[2 * r + 1] = _mm256_add_epi32(acc[2 * r + 1], _mm256_madd_epi16(_mm256_maddubs_epi16(a, w1), ones));
        }
      }
    }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    store8(p, out_pixel0 + r, nb * kBlockChannels, acc[2 * r]);
    store8(p, out_pixel0 + r, nb * kBlockChannels + 8, acc[2 * r + 1]);
  }
}

void tile_of(const ConvCodesProblem& p, int count, const uint8_t* x, int64_t step, int64_t nb, int64_t pixel0) {
  switch (count) {
    case 1: tile<1>(p, x, step, nb, pixel0); break;
    case 2: tile<2>(p, x, step, nb, pixel0); break;
    case 3: tile<3>(p, x, step, nb, pixel0); break;
    case 4: tile<4>(p, x, step, nb, pixel0); break;
    default: tile<kMaxPixels>(p, x, step, nb, pixel0); break;
  }
}

}  // namespace

void conv_codes_rows(const ConvCodesProblem& p, int64_t row0, int64_t row1) {
  const ConvCodesShape& s = p.shape;
  const int64_t C = s.channels, OW = s.out_width, step = s.stride * C;
  const int64_t tiles = (OW + kMaxPixels - 1) / kMaxPixels;
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t img = row / s.out_height, oh = row % s.out_height;
    const uint8_t* line = p.x + ((img * s.height + oh * s.stride) * s.width) * C;
    for (int64_t nb = 0; nb < p.w->n_blocks; ++nb)
      for (int64_t t = 0, ow = 0; t < tiles; ++t) {
        const int64_t count = (OW - ow) / (tiles - t);
        tile_of(p, static_cast<int>(count), line + ow * step, step, nb, row * OW + ow);
        ow += count;
      }
  }
}

}  // namespace lowbit::kernels::detail::avx2
