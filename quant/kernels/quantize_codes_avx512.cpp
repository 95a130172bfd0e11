// quantize_codes_avx512.cpp: quantize_codes.h in AVX-512F, 16 floats per step, the tail masked.
// Built with -ffp-contract=off: the multiply must stay its own rounding.
#include <immintrin.h>

#include "quant/kernels/quantize_codes.h"

namespace lowbit::kernels::detail::avx512 {

namespace {
#include "quant/kernels/quantize_codes_avx512.inc"
}  // namespace

void quantize_codes(const CodeMap& m, const float* x, int64_t count, uint8_t* out) {
  const CodeMapVectors v(m);
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 valid = count - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (count - i)) - 1u);
    _mm512_mask_cvtepi32_storeu_epi8(out + i, valid, v.codes(_mm512_maskz_loadu_ps(valid, x + i)));
  }
}

}  // namespace lowbit::kernels::detail::avx512
