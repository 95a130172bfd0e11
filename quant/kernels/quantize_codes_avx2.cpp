// quantize_codes_avx2.cpp: quantize_codes.h in AVX2, 8 floats per step, the tail in scalar code
// (the reference's expressions). Built with -ffp-contract=off: the multiply stays its own rounding.
#include <immintrin.h>

#include <cstring>

#include "quant/kernels/quantize_codes.h"

namespace lowbit::kernels::detail::avx2 {

namespace {
#include "quant/kernels/quantize_codes_ymm.inc"
}  // namespace

void quantize_codes(const CodeMap& m, const float* x, int64_t count, uint8_t* out) {
  const CodeMapVectors v(m);
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) store_code_bytes(out + i, v.codes(_mm256_loadu_ps(x + i)), 8);
  if (i < count) quantize_codes_reference(m, x + i, count - i, out + i);
}

}  // namespace lowbit::kernels::detail::avx2
