// conv_codes_avx2.cpp: the AVX2 kernel of conv_codes.h (conv_codes_ymm.inc). Compiled with
// -mavx2 -mfma -ffp-contract=off only.
// dot4: vpmaddubsw(codes, s) adds two u8 x s8 products into int16 (exact: conv_codes_supported
// keeps 2 * max_code * max|s| <= 32767), vpmaddwd(., 1) widens the pair sums into int32 at once.
// A tile is 5 pixels x 16 channels (10 accumulators + 2 weights + broadcast + ones + product).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "quant/kernels/conv_codes_internal.h"

namespace lowbit::kernels::detail::avx2 {
namespace {
constexpr int kMaxPixels = 5;
inline __m256i dot4(__m256i acc, __m256i codes, __m256i weights) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(codes, weights), _mm256_set1_epi16(1)));
}
}  // namespace

#include "quant/kernels/conv_codes_ymm.inc"

namespace {
void run(const ConvCodesProblem& p, int64_t images) { run_rows(p, images, conv_codes_rows, true); }
}  // namespace

// The lookup tables where the codes are 2-bit and the grid small; the byte multiply with int16
// sums where they stay exact long enough; the int8 chain where one pair sum is exact; otherwise
// no kernel (the GEMM path).
ConvCodesKernelTable kernels() {
  static const ConvCodesKernel rows[] = {{"avx2.maddubs16", maddubs16_applies, conv_codes_maddubs16},
                                         {"avx2.pair_lut", pair_lut_applies, conv_codes_pair_lut},
                                         {"avx2.maddubs", maddubs_exact, run}};
  return {rows, 3};
}

}  // namespace lowbit::kernels::detail::avx2
