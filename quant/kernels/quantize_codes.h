// quantize_codes.h: float -> activation codes in SIMD, for the rules that are one of two fixed
// float expressions (PACT, DoReFa: clip then multiply; LSQ: divide then clip). Every level
// computes the same IEEE operations in the same order as the rule's scalar loop, so the codes are
// identical; the integer runtime uses it for its quantize ops (quant/runtime/int_graph.h).
//   clip_then_multiply: code = RNE(min(max(x, lo), hi) * factor)
//   divide_then_clip:   code = RNE(min(max(x / factor, lo), hi))
// with std::max / std::min's choices (max(x, lo) = x < lo ? lo : x, min(v, hi) = hi < v ? hi : v)
// and round half to even; the results must lie in [0, 255] (the rules' clips make them so).
#pragma once
#include <cstdint>

#include "core/cpu_features.h"

namespace lowbit::kernels {

struct CodeMap {
  enum class Form { clip_then_multiply, divide_then_clip };
  Form form = Form::clip_then_multiply;
  float lo = 0.f, hi = 0.f, factor = 1.f;
};

// The scalar reference (plain C++, the expressions above).
void quantize_codes_reference(const CodeMap& map, const float* x, int64_t count, uint8_t* out);
// At the active ISA / an explicit one (throws when the CPU lacks it).
void quantize_codes(const CodeMap& map, const float* x, int64_t count, uint8_t* out);
void quantize_codes_at(Isa isa, const CodeMap& map, const float* x, int64_t count, uint8_t* out);

namespace detail {
namespace avx2 { void quantize_codes(const CodeMap& map, const float* x, int64_t count, uint8_t* out); }
namespace avx512 { void quantize_codes(const CodeMap& map, const float* x, int64_t count, uint8_t* out); }
}  // namespace detail

}  // namespace lowbit::kernels
