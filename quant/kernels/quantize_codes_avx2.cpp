// quantize_codes_avx2.cpp: quantize_codes.h in AVX2, 8 floats per step, the tail in scalar code
// (the reference's expressions). Built with -ffp-contract=off: the multiply stays its own rounding.
#include <immintrin.h>

#include <cstring>

#include "quant/kernels/quantize_codes.h"

namespace lowbit::kernels::detail::avx2 {

void quantize_codes(const CodeMap& m, const float* x, int64_t count, uint8_t* out) {
  const __m256 lo = _mm256_set1_ps(m.lo), hi = _mm256_set1_ps(m.hi), f = _mm256_set1_ps(m.factor);
  const bool multiply = m.form == CodeMap::Form::clip_then_multiply;
  // Low byte of each int32 lane -> 8 bytes.
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (!multiply) v = _mm256_div_ps(v, f);
    v = _mm256_blendv_ps(v, lo, _mm256_cmp_ps(v, lo, _CMP_LT_OQ));  // std::max(v, lo)
    v = _mm256_blendv_ps(v, hi, _mm256_cmp_ps(hi, v, _CMP_LT_OQ));  // std::min(v, hi)
    if (multiply) v = _mm256_mul_ps(v, f);
    v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256i b = _mm256_shuffle_epi8(_mm256_cvttps_epi32(v), pick);
    const uint32_t lo4 = static_cast<uint32_t>(_mm256_extract_epi32(b, 0));
    const uint32_t hi4 = static_cast<uint32_t>(_mm256_extract_epi32(b, 4));
    std::memcpy(out + i, &lo4, 4);
    std::memcpy(out + i + 4, &hi4, 4);
  }
  if (i < count) quantize_codes_reference(m, x + i, count - i, out + i);
}

}  // namespace lowbit::kernels::detail::avx2
