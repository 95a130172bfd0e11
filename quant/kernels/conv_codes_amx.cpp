// conv_codes_amx.cpp: the AMX-INT8 kernel of conv_codes.h (the amx level). Compiled with the
// AVX-512 flags plus -mamx-tile -mamx-int8 -ffp-contract=off.
//
// tdpbusd multiplies a tile of 16 rows x 64 unsigned bytes (A) by one of 16 rows x 64 signed
// bytes in VNNI order (B: row g = 16 channels x 4 consecutive k) into 16 x 16 int32 (C).
// B is a ConvCodesWeights block as packed: 16 k-groups of a block, 1 KiB, are one tile (blocks
// are zero-padded to a multiple of 64 k). A is gathered: a pass takes 32 output pixels (two A
// tiles) and copies each one's receptive field, kernel row by kernel row (K * C contiguous codes),
// into a row of k_padded bytes, zero beyond k: one row is that pixel's im2col row (one copy
// per kernel row: its K taps are contiguous in the NHWC image). Four C tiles
// (2 pixel tiles x 2 channel blocks) accumulate over K in 64-byte steps; the int32 sums leave
// through memory to the AVX-512 epilogue, which the avx512 level uses too, so the two levels
// are bit-identical by construction (the products are exact integers either way).
// The window sums of split weights are the byte sums of the gathered rows (padding is zero).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "quant/kernels/conv_codes_internal.h"

namespace lowbit::kernels::detail::amx {
namespace {

constexpr int kTileRows = 16;                 // pixels per A tile; k-groups per B tile
constexpr int kTileBytes = 64;                // bytes per tile row
constexpr int kPassPixels = 2 * kTileRows;    // pixels gathered per pass
constexpr int64_t kBTileBytes = kTileRows * kTileBytes;

// Tile register roles: C tiles 0..3 (pixel tile i, channel block b: tile 2*i + b), A tiles 4, 5,
// B tiles 6, 7. All of them 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = kTileBytes;
    cfg.rows[t] = kTileRows;
  }
  _tile_loadconfig(&cfg);
}

// Copies n bytes (a multiple of 4). Loads are masked (never past the image); stores are whole
// zmm, so up to 63 bytes past dst + n are written too: the next kernel row, the row's zero tail
// or the buffer's slack, all written after this one.
inline void copy_codes(const uint8_t* src, uint8_t* dst, int64_t n) {
  for (int64_t c = 0; c < n; c += 64) {
    const int64_t left = std::min<int64_t>(64, n - c);
    const __mmask64 m = left == 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
    _mm512_storeu_si512(dst + c, _mm512_maskz_loadu_epi8(m, src + c));
  }
}

// Gathers `count` output pixels starting at batch pixel q0 into rows of `lda` bytes (the
// pixels' im2col rows, zero from k to lda); rows count .. kPassPixels - 1 are zeroed. The K taps
// of one kernel row are K * C contiguous bytes of the image and of the im2col row alike: one
// copy per kernel row.
void gather(const ConvCodesProblem& p, int64_t q0, int count, uint8_t* rows, int64_t lda) {
  const ConvCodesShape& s = p.shape;
  const int64_t C = s.channels, K = p.w->kernel, k = p.w->k, line = s.width * C, span = K * C;
  const int64_t per_image = s.out_height * s.out_width;
  int64_t img = q0 / per_image, oh = (q0 % per_image) / s.out_width, ow = q0 % s.out_width;
  for (int r = 0; r < count; ++r) {
    const uint8_t* src = p.x + ((img * s.height + oh * s.stride) * s.width + ow * s.stride) * C;
    uint8_t* dst = rows + r * lda;
    for (int64_t kh = 0; kh < K; ++kh) copy_codes(src + kh * line, dst + kh * span, span);
    if (k < lda) _mm512_storeu_si512(dst + k, _mm512_setzero_si512());  // the zero tail (< 64 bytes)
    if (++ow == s.out_width) {
      ow = 0;
      if (++oh == s.out_height) oh = 0, ++img;
    }
  }
  if (count < kPassPixels) std::memset(rows + count * lda, 0, static_cast<size_t>((kPassPixels - count) * lda));
}

// The byte sum of each gathered row: the pixel's window sum (split weights).
void row_sums(const uint8_t* rows, int count, int64_t lda, int32_t* out) {
  const __m512i zero = _mm512_setzero_si512();
  for (int r = 0; r < count; ++r) {
    __m512i acc = zero;
    for (int64_t c = 0; c < lda; c += 64)
      acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_loadu_si512(rows + r * lda + c), zero));
    out[r] = static_cast<int32_t>(_mm512_reduce_add_epi64(acc));
  }
}

// The products of the gathered pass (one or two pixel tiles) with channel blocks nb (and
// nb + 1), stored as rows x nbs blocks of 16 int32: the epilogue's layout.
template <bool TWO_TILES, bool TWO_BLOCKS>
void multiply(const uint8_t* rows, int64_t lda, const ConvCodesWeights& w, int64_t nb, int32_t* sums) {
  constexpr int nbs = TWO_BLOCKS ? 2 : 1;
  constexpr int64_t stride = nbs * kBlockChannels * sizeof(int32_t);
  const int8_t* b0 = w.block(nb);
  const int8_t* b1 = TWO_BLOCKS ? w.block(nb + 1) : nullptr;
  _tile_zero(0);
  if constexpr (TWO_BLOCKS) _tile_zero(1);
  if constexpr (TWO_TILES) _tile_zero(2);
  if constexpr (TWO_TILES && TWO_BLOCKS) _tile_zero(3);
  for (int64_t j = 0; j < lda / kTileBytes; ++j) {
    _tile_loadd(4, rows + j * kTileBytes, lda);
    _tile_loadd(6, b0 + j * kBTileBytes, kTileBytes);
    if constexpr (TWO_TILES) _tile_loadd(5, rows + kTileRows * lda + j * kTileBytes, lda);
    _tile_dpbusd(0, 4, 6);
    if constexpr (TWO_TILES) _tile_dpbusd(2, 5, 6);
    if constexpr (TWO_BLOCKS) {
      _tile_loadd(7, b1 + j * kBTileBytes, kTileBytes);
      _tile_dpbusd(1, 4, 7);
      if constexpr (TWO_TILES) _tile_dpbusd(3, 5, 7);
    }
  }
  int32_t* lower = sums + kTileRows * nbs * kBlockChannels;  // pixels 16..31
  _tile_stored(0, sums, stride);
  if constexpr (TWO_BLOCKS) _tile_stored(1, sums + kBlockChannels, stride);
  if constexpr (TWO_TILES) _tile_stored(2, lower, stride);
  if constexpr (TWO_TILES && TWO_BLOCKS) _tile_stored(3, lower + kBlockChannels, stride);
}

}  // namespace

void conv_codes_rows(const ConvCodesProblem& p, int64_t row0, int64_t row1) {
  const ConvCodesWeights& w = *p.w;
  const int64_t lda = w.k_padded, NB = w.n_blocks;
  const int64_t q_begin = row0 * p.shape.out_width, q_end = row1 * p.shape.out_width;
  // 64 bytes of slack: the last row's whole-vector stores (copy_codes) may reach past it.
  thread_local std::vector<uint8_t> rows_buffer;
  rows_buffer.resize(static_cast<size_t>(kPassPixels * lda + 64));
  uint8_t* rows = rows_buffer.data();
  alignas(64) int32_t sums[kPassPixels * 2 * kBlockChannels];
  int32_t window[kPassPixels];
  configure_tiles();
  for (int64_t q0 = q_begin; q0 < q_end; q0 += kPassPixels) {
    const int count = static_cast<int>(std::min<int64_t>(kPassPixels, q_end - q0));
    gather(p, q0, count, rows, lda);
    if (w.split) row_sums(rows, count, lda, window);
    const bool two_tiles = count > kTileRows;
    for (int64_t nb = 0; nb < NB; nb += 2) {
      const bool two_blocks = nb + 1 < NB;
      if (two_tiles && two_blocks) multiply<true, true>(rows, lda, w, nb, sums);
      else if (two_tiles) multiply<true, false>(rows, lda, w, nb, sums);
      else if (two_blocks) multiply<false, true>(rows, lda, w, nb, sums);
      else multiply<false, false>(rows, lda, w, nb, sums);
      avx512::epilogue_tile(p, sums, w.split ? window : nullptr, count, two_blocks ? 2 : 1, nb, q0);
    }
  }
  _tile_release();
}

// AMX computes every grid exactly (tdpbusd does not saturate).
ConvCodesKernelTable kernels() {
  static const ConvCodesKernel rows[] = {{"amx.tdpbusd", always_applies, run_rows_of<conv_codes_rows, nullptr>}};
  return {rows, 1};
}

}  // namespace lowbit::kernels::detail::amx
