// conv_codes_int16_avx2.cpp: the AVX2 byte-multiply kernel of conv_codes.h with int16 sums
// ("avx2.maddubs16"). Compiled with -mavx2 -mfma -ffp-contract=off only.
//
// The int8 chain (conv_codes_avx2.cpp) widens every vpmaddubsw result at once: vpmaddubsw ->
// vpmaddwd(., 1) -> vpaddd, 3 uops per 32 multiply-adds. Here the int16 pair sums of vpmaddubsw
// are added with vpaddw, 2 uops per 32, and widened (vpmaddwd against ones, into int32) only
// every `run` 4-channel groups, where run * max_code * max(|s_k| + |s_k+1|) <= 32767 keeps every int16
// sum exact (about 1800 groups for 2-bit codes and weights, 72 for 4-bit, 21 for 8-bit codes
// with 2-bit weights). A tile is 5 pixels x 16 channels: 10 int16 accumulators in registers,
// their int32 sums on the stack.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "quant/kernels/conv_codes_internal.h"

namespace lowbit::kernels::detail::avx2 {
namespace {

#include "quant/kernels/quantize_codes_ymm.inc"
#include "quant/kernels/conv_codes_ymm_epilogue.inc"

constexpr int kMaxPixels = 5;

// Groups whose int16 pair sums stay exact; 0 when one vpmaddubsw could already saturate.
int64_t exact_run(const ConvCodesWeights& w, int act_bits) {
  const int64_t pair = int64_t{max_code(act_bits)} * std::max(1, w.max_pair_abs);
  return pair > 32767 ? 0 : 32767 / pair;
}

inline __m256i bcast_dword(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// x: the tile's first pixel at tap (0, 0); pixel r is x + r * pixel_step; offsets[g]: k-group g
// from a pixel's tap (0, 0) (group_offsets).
template <int R>
void tile(const ConvCodesProblem& p, const YmmEpilogue& e, const int32_t* offsets, int64_t run, const uint8_t* x,
          int64_t pixel_step, int64_t nb, int64_t out_pixel0) {
  const ConvCodesWeights& w = *p.w;
  const int64_t groups = w.k / 4;
  const int8_t* wb = w.block(nb);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc32[2 * R];
#pragma GCC unroll 16
  for (int i = 0; i < 2 * R; ++i) acc32[i] = _mm256_setzero_si256();
  for (int64_t g0 = 0; g0 < groups; g0 += run) {
    const int64_t g1 = std::min(groups, g0 + run);
    __m256i acc[2 * R];
#pragma GCC unroll 16
    for (int i = 0; i < 2 * R; ++i) acc[i] = _mm256_setzero_si256();
    for (int64_t g = g0; g < g1; ++g) {
      const uint8_t* px = x + offsets[g];
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + g * 64));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb + g * 64 + 32));
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m256i a = bcast_dword(px + r * pixel_step);
        acc[2 * r] = _mm256_add_epi16(acc[2 * r], _mm256_maddubs_epi16(a, w0));
        acc[2 * r + 1] = _mm256_add_epi16(acc[2 * r + 1], _mm256_maddubs_epi16(a, w1));
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < 2 * R; ++i) acc32[i] = _mm256_add_epi32(acc32[i], _mm256_madd_epi16(acc[i], ones));
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    e.store8(out_pixel0 + r, nb * kBlockChannels, acc32[2 * r]);
    e.store8(out_pixel0 + r, nb * kBlockChannels + 8, acc32[2 * r + 1]);
  }
}

void tile_of(const ConvCodesProblem& p, const YmmEpilogue& e, const int32_t* offsets, int64_t run, int count,
             const uint8_t* x, int64_t step, int64_t nb, int64_t pixel0) {
  switch (count) {
    case 1: tile<1>(p, e, offsets, run, x, step, nb, pixel0); break;
    case 2: tile<2>(p, e, offsets, run, x, step, nb, pixel0); break;
    case 3: tile<3>(p, e, offsets, run, x, step, nb, pixel0); break;
    case 4: tile<4>(p, e, offsets, run, x, step, nb, pixel0); break;
    default: tile<kMaxPixels>(p, e, offsets, run, x, step, nb, pixel0); break;
  }
}

void rows(const ConvCodesProblem& p, int64_t row0, int64_t row1) {
  const ConvCodesShape& s = p.shape;
  const int64_t C = s.channels, OW = s.out_width, step = s.stride * C;
  const int64_t tiles = (OW + kMaxPixels - 1) / kMaxPixels;
  const int64_t run = exact_run(*p.w, s.act_bits);
  std::vector<int32_t> offsets;
  group_offsets(p, offsets);
  const YmmEpilogue e(p);
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t img = row / s.out_height, oh = row % s.out_height;
    const uint8_t* line = p.x + ((img * s.height + oh * s.stride) * s.width) * C;
    for (int64_t nb = 0; nb < p.w->n_blocks; ++nb)
      for (int64_t t = 0, ow = 0; t < tiles; ++t) {
        const int64_t count = (OW - ow) / (tiles - t);
        tile_of(p, e, offsets.data(), run, static_cast<int>(count), line + ow * step, step, nb, row * OW + ow);
        ow += count;
      }
  }
}

}  // namespace

// At least 16 groups per widening (below that the int8 chain's immediate widening costs as much).
bool maddubs16_applies(const ConvCodesWeights& w, int act_bits) { return exact_run(w, act_bits) >= 16; }

void conv_codes_maddubs16(const ConvCodesProblem& p, int64_t images) { run_rows(p, images, rows, window_sums); }

}  // namespace lowbit::kernels::detail::avx2
