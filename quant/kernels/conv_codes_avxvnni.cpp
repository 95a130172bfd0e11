// conv_codes_avxvnni.cpp: the AVX-VNNI kernel of conv_codes.h (conv_codes_ymm.inc), for CPUs
// with VEX-encoded ymm vpdpbusd. Compiled with -mavx2 -mfma -mavxvnni -ffp-contract=off only.
// dot4: one vpdpbusd (u8 codes x s8 weights, 4 products per int32 lane, no saturation). A tile
// is 6 pixels x 16 channels (12 accumulators + 2 weights + the broadcast).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "quant/kernels/conv_codes_internal.h"

namespace lowbit::kernels::detail::avx_vnni {
namespace {
constexpr int kMaxPixels = 6;
inline __m256i dot4(__m256i acc, __m256i codes, __m256i weights) { return _mm256_dpbusd_avx_epi32(acc, codes, weights); }
}  // namespace

#include "quant/kernels/conv_codes_ymm.inc"

ConvCodesKernelTable kernels() {
  static const ConvCodesKernel rows[] = {{"avx_vnni.vpdpbusd", always_applies, run_rows_of<conv_codes_rows, avx2::window_sums>}};
  return {rows, 1};
}

}  // namespace lowbit::kernels::detail::avx_vnni
