// act_code.h: the integer meaning of the quantizer methods a model file names, Module-free (what
// the runtime needs; quant/quantizer.h adds the trainable side): an activation quantizer's spec
// (ActCodeSpec: method, bits, two float parameters), its method's float -> code rule
// (ActCodeRule), and the one table of method names the file format knows (method_codes()).
// quant/registry.h pairs each row with the method's training factories by name (a test checks
// that both tables list the same methods).
//
// The rules, per method (n = 2^bits - 1, round = round half to even; reference:
// ../shared/reference/quant-methods.md, docs/model-format.md):
//   dorefa  code = round(n * clamp(x, 0, 1))
//   pact    code = round(clamp(x, 0, alpha) * n / alpha)                       p0 = alpha > 0
//   qil     code = round(clamp((x - c + d) / (2d), 0, 1) * n)                  p0 = c, p1 = d > 0
//   lsq     code = round(clamp(x / s, 0, n))                                   p0 = s > 0
//   input   code = round(clamp(x / S, -q, q)) + q,  q = 2^(bits-1) - 1 (zero point), bits >= 2, p0 = S > 0
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "quant/kernels/quantize_codes.h"

namespace lowbit {

// The integer meaning of an activation quantizer under its current parameters: the method name
// (its table key), bits and up to two float parameters (PACT alpha; QIL c, d; LSQ s; input S).
struct ActCodeSpec {
  std::string method;
  int bits = 8;
  float p0 = 0.f, p1 = 0.f;
};

// code = clamp(round(mul * y + add), 0, 2^bits - 1): the form export folds into an epilogue.
struct CodeAffine {
  double mul = 0, add = 0;
};

// The integer rule of one activation method, stateless: an ActCodeSpec -> codes. Both quantize
// functions use the training quantizer's exact float expression (round half to even), so the
// runtime's codes equal Quantizer::codes() of the module the spec came from.
class ActCodeRule {
 public:
  virtual ~ActCodeRule() = default;
  // Empty when the spec can run; otherwise what is wrong ("needs a positive alpha, got 0").
  virtual std::string check(const ActCodeSpec& spec) const = 0;
  // real = scale * (code - zero_point) (the zero point of the codes' value).
  virtual int32_t zero_point(const ActCodeSpec& /*spec*/) const { return 0; }
  // n = 2^bits - 1.
  static int levels(const ActCodeSpec& spec) { return (1 << spec.bits) - 1; }
  // One float (std::nearbyint rounding) and count floats (vectorisable rounding): equal codes.
  virtual uint8_t quantize(const ActCodeSpec& spec, float x) const = 0;
  virtual void quantize_many(const ActCodeSpec& spec, const float* x, int64_t count, uint8_t* out) const = 0;
  // The affine form when the codes are clamp(round(mul * y + add), 0, 2^bits - 1), else none.
  virtual std::optional<CodeAffine> affine(const ActCodeSpec& /*spec*/) const { return std::nullopt; }
  // quantize_many as one of the SIMD loops of quant/kernels/quantize_codes.h (the same float
  // operations, so the same codes), else none (the runtime then calls quantize_many).
  virtual std::optional<kernels::CodeMap> code_map(const ActCodeSpec& /*spec*/) const { return std::nullopt; }
};

// One method name of the file format: whether it has a weight grid (a conv/linear op's
// weight_method) and its activation rule (nullptr: no activation quantizer).
struct MethodCodes {
  const char* name;
  bool weights;
  const ActCodeRule* act_rule;
};

// Every method, in the documented order (dorefa, pact, sawb, qil, lsq, input). Built once, constant.
const std::vector<MethodCodes>& method_codes();
const MethodCodes* find_method_codes(const std::string& name);  // nullptr when unknown
// Names of the methods with a weight grid / an activation rule, e.g. "dorefa, pact, qil, lsq, input".
std::string weight_method_names();
std::string act_method_names();
// The integer rule of an activation method; throws lowbit::Error "unknown activation quantizer
// method 'X' (known: ...)" when there is none.
const ActCodeRule& act_code_rule(const std::string& method);

namespace quant_detail {

// Round half to even, equal to std::nearbyint under the default rounding mode for |v| < 2^22
// (every caller rounds an already clipped code, |v| <= 255). Adding and subtracting 1.5 * 2^23
// leaves no fraction bits, so the FPU's round-to-nearest-even does the rounding. Why not
// std::nearbyint: without SSE4.1 (the default build) it is a libm call that saves and restores
// the FP environment per element, ~8x slower than the whole fused pass. Not valid under
// -ffast-math (which could fold the two additions away); lowbit never uses it.
inline float round_half_even(float v) {
  constexpr float kMagic = 12582912.f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}

// The rounding of the integer runtime's vectorised quantize loops (ActCodeRule::quantize_many):
// round_half_even, except where the target has FMA: there the compiler may contract the multiply
// before it into a fused multiply-add, which drops the product's rounding and can move a tie, so
// the exact call is used.
inline float round_code(float v) {
#if defined(__FMA__) || defined(__FMA4__)
  return std::nearbyint(v);
#else
  return round_half_even(v);
#endif
}

}  // namespace quant_detail
}  // namespace lowbit
