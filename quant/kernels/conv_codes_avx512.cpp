// conv_codes_avx512.cpp: the AVX-512 VNNI kernel of conv_codes.h. Compiled with
// -mavx512f -mavx512bw -mavx512vl -mavx512vnni -ffp-contract=off only.
//
// A register tile is R pixels along an output row x 16*NB channels (R*NB accumulators, <= 16
// with NB weight vectors and a broadcast: all in zmm). Per tap (kh, kw) and 4-channel group:
// NB weight loads, R dword broadcasts of the pixels' codes, R*NB vpdpbusd. The codes are read
// in place from the bordered NHWC image; the whole K of a block's weights (<= 9 * 64 * 16 bytes
// for the zoo) stays in L1 across the tiles of a row.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "quant/kernels/conv_codes_internal.h"

namespace lowbit::kernels::detail::avx512 {
namespace {

#include "quant/kernels/quantize_codes_avx512.inc"

inline __m512i bcast_dword(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// The epilogue of one channel block for `rows` pixels: scale, bias and the channel mask are
// loaded once per block; the kind (and the fusion) is decided once, outside the pixel loop.
enum class Out { int32, float32, codes, fused };

// 16 int32 codes -> 16 bytes: narrow in a register and store whole when every channel is valid
// (the masked narrowing store vpmovdb m128{k} is several times slower on Intel cores).
inline void store_codes16(uint8_t* dst, __mmask16 mask, __m512i codes) {
  if (mask == 0xFFFF)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_cvtepi32_epi8(codes));
  else
    _mm512_mask_cvtepi32_storeu_epi8(dst, mask, codes);
}

// window: per pixel, the code sum of its receptive field (split weights), else nullptr.
template <Out KIND>
void epilogue_block(const ConvCodesProblem& p, const int32_t* sums, const int32_t* window, int rows, int stride,
                    int64_t n0, int64_t out_pixel0) {
  const int64_t valid = std::min<int64_t>(kBlockChannels, p.w->out_channels - n0);
  if (valid <= 0) return;
  const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
  const __m512 scale = _mm512_loadu_ps(p.scale_pad + n0), bias = _mm512_loadu_ps(p.bias_pad + n0);
  const __m512 maxc = _mm512_set1_ps(static_cast<float>(p.ep.max_code_out)), zero = _mm512_setzero_ps();
  const CodeMapVectors maps[ConvCodesFusion::kMaxCodes] = {CodeMapVectors(p.fuse.codes[0].map),
                                                          CodeMapVectors(p.fuse.codes[1].map)};
  for (int r = 0; r < rows; ++r) {
    __m512i acc = _mm512_load_si512(sums + r * stride);
    if (window) acc = _mm512_add_epi32(_mm512_slli_epi32(acc, 1), _mm512_set1_epi32(p.w->window_term * window[r]));
    const int64_t off = (out_pixel0 + r) * p.ldo + n0;
    if constexpr (KIND == Out::int32) {
      _mm512_mask_storeu_epi32(static_cast<int32_t*>(p.out) + off, mask, acc);
      continue;
    }
    // cvt, mul, add: two roundings (-ffp-contract=off), as ref::conv_codes_rows.
    __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale), bias);
    if constexpr (KIND == Out::codes) {
      __m512 q = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm512_min_ps(_mm512_max_ps(q, zero), maxc);
      store_codes16(static_cast<uint8_t*>(p.out) + off, mask, _mm512_cvttps_epi32(q));
    } else {
      if constexpr (KIND == Out::fused) {
        // The residual add, then ReLU as std::max(y, 0.f): y < 0 ? 0 : y (-0 and NaN pass).
        if (p.fuse.residual) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, p.fuse.residual + off));
        if (p.fuse.relu) y = _mm512_max_ps(zero, y);  // maxps returns y when unordered or equal
        for (int q = 0; q < p.fuse.code_outputs; ++q)
          store_codes16(p.fuse.codes[q].out + off, mask, maps[q].codes(y));
      }
      _mm512_mask_storeu_ps(static_cast<float*>(p.out) + off, mask, y);
    }
  }
}

}  // namespace

// Out of line: see tile().
__attribute__((noinline)) void epilogue_tile(const ConvCodesProblem& p, const int32_t* sums, const int32_t* window,
                                             int rows, int nbs, int64_t nb, int64_t out_pixel0) {
  const int stride = nbs * kBlockChannels;
  const bool fused = p.fuse.any();
  for (int b = 0; b < nbs; ++b) {
    const int32_t* s = sums + b * kBlockChannels;
    const int64_t n0 = (nb + b) * kBlockChannels;
    if (fused) epilogue_block<Out::fused>(p, s, window, rows, stride, n0, out_pixel0);
    else if (p.ep.kind == EpilogueKind::codes) epilogue_block<Out::codes>(p, s, window, rows, stride, n0, out_pixel0);
    else if (p.ep.kind == EpilogueKind::float32) epilogue_block<Out::float32>(p, s, window, rows, stride, n0, out_pixel0);
    else epilogue_block<Out::int32>(p, s, window, rows, stride, n0, out_pixel0);
  }
}

namespace {

// x: the tile's first pixel at tap (0, 0); pixel r of the tile is x + r * pixel_step. offsets[g]:
// where k-group g (4 channels of one tap) lies from a pixel's tap (0, 0). One flat loop over the
// groups (no tap loops around it): GCC then keeps every accumulator in a zmm, as in the GEMM.
// WIN (split weights): R more accumulators take each broadcast times a vector of ones, so their
// lanes hold the pixel's window sum, for the epilogue's 2 * acc + t * window.
template <int R, int NB, bool WIN>
void tile(const ConvCodesProblem& p, const int32_t* offsets, const uint8_t* x, int64_t pixel_step, int64_t nb,
          int64_t out_pixel0) {
  const ConvCodesWeights& w = *p.w;
  const int64_t groups = w.k / 4, block_bytes = w.block_bytes();
  const int8_t* wb = w.block(nb);
  constexpr int NW = WIN ? R : 0;
  __m512i acc[R * NB + NW];
  const __m512i ones = _mm512_set1_epi8(1);
#pragma GCC unroll 32
  for (int i = 0; i < R * NB + NW; ++i) acc[i] = _mm512_setzero_si512();
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* px = x + offsets[g];
    __m512i wv[NB];
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) wv[b] = _mm512_load_si512(wb + b * block_bytes + g * 64);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512i a = bcast_dword(px + r * pixel_step);
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) acc[r * NB + b] = _mm512_dpbusd_epi32(acc[r * NB + b], a, wv[b]);
      if constexpr (WIN) acc[R * NB + r] = _mm512_dpbusd_epi32(acc[R * NB + r], a, ones);
    }
#pragma GCC unroll 32
    for (int i = 0; i < R * NB + NW; ++i) asm("" : "+v"(acc[i]));  // every accumulator stays in a zmm
  }
  // The sums leave through memory to an out-of-line epilogue: with the epilogue's branches in
  // this function GCC 12 kept a stack copy of every accumulator updated inside the K loop.
  alignas(64) int32_t sums[R * NB * kBlockChannels];
  int32_t window[R > 0 ? R : 1];
#pragma GCC unroll 16
  for (int i = 0; i < R * NB; ++i) _mm512_store_si512(sums + i * kBlockChannels, acc[i]);
  if constexpr (WIN) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) window[r] = _mm_cvtsi128_si32(_mm512_castsi512_si128(acc[R * NB + r]));
  }
  epilogue_tile(p, sums, WIN ? window : nullptr, R, NB, nb, out_pixel0);
}

// The most pixels per tile: (NB + WIN) accumulators per pixel, at most 16 (14 for NB = 1).
constexpr int max_tile_pixels(int nb, bool win) { return win ? 7 : nb == 1 ? 14 : 7; }

// Runs `count` pixels of a row as one tile (count <= max_tile_pixels).
template <int NB, bool WIN>
void tile_of(const ConvCodesProblem& p, const int32_t* offs, int count, const uint8_t* x, int64_t step, int64_t nb,
             int64_t pixel0) {
  constexpr int kMax = max_tile_pixels(NB, WIN);
#define LOWBIT_TILE_CASE(r) \
  case r: if constexpr (r < kMax) { tile<r, NB, WIN>(p, offs, x, step, nb, pixel0); break; } [[fallthrough]];
  switch (count) {
    LOWBIT_TILE_CASE(1) LOWBIT_TILE_CASE(2) LOWBIT_TILE_CASE(3) LOWBIT_TILE_CASE(4) LOWBIT_TILE_CASE(5)
    LOWBIT_TILE_CASE(6) LOWBIT_TILE_CASE(7) LOWBIT_TILE_CASE(8) LOWBIT_TILE_CASE(9) LOWBIT_TILE_CASE(10)
    LOWBIT_TILE_CASE(11) LOWBIT_TILE_CASE(12) LOWBIT_TILE_CASE(13)
    default: tile<kMax, NB, WIN>(p, offs, x, step, nb, pixel0);
  }
#undef LOWBIT_TILE_CASE
}

}  // namespace

void conv_codes_rows(const ConvCodesProblem& p, int64_t row0, int64_t row1) {
  const ConvCodesShape& s = p.shape;
  const int64_t C = s.channels, OW = s.out_width, step = s.stride * C;
  const int64_t NB = p.w->n_blocks;
  thread_local std::vector<int32_t> offsets;
  group_offsets(p, offsets);
  const int32_t* offs = offsets.data();
  const bool win = p.w->split;
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t img = row / s.out_height, oh = row % s.out_height;
    const uint8_t* line = p.x + ((img * s.height + oh * s.stride) * s.width) * C;
    // Channel blocks in pairs (a lone last block alone); the row's pixels in near-equal tiles.
    for (int64_t nb = 0; nb < NB; nb += 2) {
      const bool two = nb + 1 < NB;
      const int64_t rmax = max_tile_pixels(two ? 2 : 1, win);
      const int64_t tiles = (OW + rmax - 1) / rmax;
      for (int64_t t = 0, ow = 0; t < tiles; ++t) {
        const int count = static_cast<int>((OW - ow) / (tiles - t));
        const uint8_t* px = line + ow * step;
        const int64_t pixel0 = row * OW + ow;
        if (two && win) tile_of<2, true>(p, offs, count, px, step, nb, pixel0);
        else if (two) tile_of<2, false>(p, offs, count, px, step, nb, pixel0);
        else if (win) tile_of<1, true>(p, offs, count, px, step, nb, pixel0);
        else tile_of<1, false>(p, offs, count, px, step, nb, pixel0);
        ow += count;
      }
    }
  }
}

ConvCodesKernelTable kernels() {
  static const ConvCodesKernel rows[] = {{"avx512.vpdpbusd", always_applies, run_rows_of<conv_codes_rows, nullptr>}};
  return {rows, 1};
}

}  // namespace lowbit::kernels::detail::avx512
