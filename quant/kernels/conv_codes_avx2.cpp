// conv_codes_avx2.cpp: the AVX2 kernel of conv_codes.h (conv_codes_ymm.inc). Compiled with
// -mavx2 -mfma -ffp-contract=off only.
// dot4: vpmaddubsw(codes, s) adds two u8 x s8 products into int16 (exact: conv_codes_supported
// keeps max_code * max(|s_k| + |s_k+1|) <= 32767), vpmaddwd(., 1) widens the pair sums into int32 at once.
// A tile is 5 pixels x 16 channels (10 accumulators + 2 weights + broadcast + ones + product).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "quant/kernels/conv_codes_internal.h"

namespace lowbit::kernels::detail::avx2 {
namespace {
constexpr int kMaxPixels = 5;
inline __m256i dot4(__m256i acc, __m256i codes, __m256i weights) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(codes, weights), _mm256_set1_epi16(1)));
}
}  // namespace

#include "quant/kernels/conv_codes_ymm.inc"

// The window sums of split weights (ref::window_sums' contract): per tap row, the code sum of
// every input pixel of the line (4 channels: vpmaddubsw + vpmaddwd against ones, 8 pixels at a
// time), then K of them per output (stride 1: K unaligned loads per 8 outputs).
void window_sums(const ConvCodesProblem& p, int64_t row0, int64_t row1, int32_t* out) {
  const ConvCodesShape& s = p.shape;
  const int64_t C = s.channels, K = p.w->kernel, W = s.width, S = s.stride, OW = s.out_width;
  if (C != 4 || S != 1) {
    ref::window_sums(p, row0, row1, out);
    return;
  }
  std::vector<int32_t> pixel_sums(static_cast<size_t>(W + 8));
  int32_t* const ps = pixel_sums.data();
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t img = row / s.out_height, oh = row % s.out_height;
    int32_t* o = out + (row - row0) * OW;
    for (int64_t ow = 0; ow < OW; ++ow) o[ow] = 0;
    for (int64_t kh = 0; kh < K; ++kh) {
      const uint8_t* line = p.x + (img * s.height + oh + kh) * W * C;
      int64_t iw = 0;
      for (; iw + 8 <= W; iw += 8) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(line + iw * C));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(ps + iw),
                            _mm256_madd_epi16(_mm256_maddubs_epi16(v, ones8), ones16));
      }
      for (; iw < W; ++iw) ps[iw] = line[iw * C] + line[iw * C + 1] + line[iw * C + 2] + line[iw * C + 3];
      int64_t ow = 0;
      for (; ow + 8 <= OW; ow += 8) {
        __m256i acc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + ow));
        for (int64_t kw = 0; kw < K; ++kw)
          acc = _mm256_add_epi32(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ps + ow + kw)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + ow), acc);
      }
      for (; ow < OW; ++ow)
        for (int64_t kw = 0; kw < K; ++kw) o[ow] += ps[ow + kw];
    }
  }
}

// The lookup tables where the codes are 2-bit and the grid small; the byte multiply with int16
// sums where they stay exact long enough; the int8 chain where one pair sum is exact; otherwise
// no kernel (the GEMM path).
ConvCodesKernelTable kernels() {
  static const ConvCodesKernel rows[] = {{"avx2.maddubs16", maddubs16_applies, conv_codes_maddubs16},
                                         {"avx2.pair_lut", pair_lut_applies, conv_codes_pair_lut, true},
                                         {"avx2.maddubs", maddubs_exact, run_rows_of<conv_codes_rows, window_sums>}};
  return {rows, 3};
}

}  // namespace lowbit::kernels::detail::avx2
