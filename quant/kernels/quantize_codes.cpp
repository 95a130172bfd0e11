// quantize_codes.cpp: the scalar reference and the dispatch of quantize_codes.h (kernel_table.h).
#include "quant/kernels/quantize_codes.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/kernels/kernel_table.h"

namespace lowbit::kernels {

void quantize_codes_reference(const CodeMap& m, const float* x, int64_t count, uint8_t* out) {
  for (int64_t i = 0; i < count; ++i) {
    const float v = m.form == CodeMap::Form::clip_then_multiply ? std::min(std::max(x[i], m.lo), m.hi) * m.factor
                                                                : std::min(std::max(x[i] / m.factor, m.lo), m.hi);
    out[i] = static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(v)));
  }
}

void quantize_codes_at(Isa isa, const CodeMap& map, const float* x, int64_t count, uint8_t* out) {
  LOWBIT_CHECK(isa_supported(isa), "quantize_codes: ISA ", isa_name(isa),
               " is not supported by this CPU");
  kernel_table(isa).quantize_codes(map, x, count, out);
}

void quantize_codes(const CodeMap& map, const float* x, int64_t count, uint8_t* out) {
  quantize_codes_at(active_isa_level(), map, x, count, out);
}

}  // namespace lowbit::kernels
