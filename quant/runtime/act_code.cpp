// act_code.cpp: the activation rules of dorefa, pact, qil, lsq and input (formulas in act_code.h)
// and the table of method names the model file knows. A rule's expression is its training
// quantizer's (quant/<method>.cpp): a change to one is a change to both.
#include "quant/runtime/act_code.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lowbit {
namespace {

using quant_detail::round_code;

class DorefaActRule final : public ActCodeRule {
 public:
  std::string check(const ActCodeSpec&) const override { return {}; }
  uint8_t quantize(const ActCodeSpec& s, float x) const override {
    const float n = static_cast<float>(levels(s));
    return static_cast<uint8_t>(std::nearbyint(n * std::min(std::max(x, 0.f), 1.f)));
  }
  void quantize_many(const ActCodeSpec& s, const float* x, int64_t count, uint8_t* out) const override {
    const float n = static_cast<float>(levels(s));
    for (int64_t i = 0; i < count; ++i)
      out[i] = static_cast<uint8_t>(static_cast<int32_t>(round_code(n * std::min(std::max(x[i], 0.f), 1.f))));
  }
  std::optional<CodeAffine> affine(const ActCodeSpec& s) const override {
    return CodeAffine{static_cast<double>(levels(s)), 0.0};
  }
  std::optional<kernels::CodeMap> code_map(const ActCodeSpec& s) const override {
    return kernels::CodeMap{kernels::CodeMap::Form::clip_then_multiply, 0.f, 1.f, static_cast<float>(levels(s))};
  }
};

class PactActRule final : public ActCodeRule {
 public:
  std::string check(const ActCodeSpec& s) const override {
    return s.p0 > 0.f ? std::string() : detail::concat("needs a positive alpha, got ", s.p0);
  }
  uint8_t quantize(const ActCodeSpec& s, float x) const override {
    const float a = s.p0, inv = static_cast<float>(levels(s)) / a;
    return static_cast<uint8_t>(std::nearbyint(std::min(std::max(x, 0.f), a) * inv));
  }
  void quantize_many(const ActCodeSpec& s, const float* x, int64_t count, uint8_t* out) const override {
    const float a = s.p0, inv = static_cast<float>(levels(s)) / a;
    for (int64_t i = 0; i < count; ++i)
      out[i] = static_cast<uint8_t>(static_cast<int32_t>(round_code(std::min(std::max(x[i], 0.f), a) * inv)));
  }
  std::optional<CodeAffine> affine(const ActCodeSpec& s) const override {
    return CodeAffine{static_cast<double>(levels(s)) / s.p0, 0.0};
  }
  std::optional<kernels::CodeMap> code_map(const ActCodeSpec& s) const override {
    return kernels::CodeMap{kernels::CodeMap::Form::clip_then_multiply, 0.f, s.p0, static_cast<float>(levels(s)) / s.p0};
  }
};

class QilActRule final : public ActCodeRule {
 public:
  std::string check(const ActCodeSpec& s) const override {
    return s.p1 > 0.f ? std::string() : detail::concat("needs a positive QIL d, got ", s.p1);
  }
  uint8_t quantize(const ActCodeSpec& s, float x) const override {
    const float n = static_cast<float>(levels(s)), inv_2d = 1.f / (2.f * s.p1);
    return static_cast<uint8_t>(std::nearbyint(std::min(std::max((x - s.p0 + s.p1) * inv_2d, 0.f), 1.f) * n));
  }
  void quantize_many(const ActCodeSpec& s, const float* x, int64_t count, uint8_t* out) const override {
    const float n = static_cast<float>(levels(s)), c = s.p0, d = s.p1, inv_2d = 1.f / (2.f * d);
    for (int64_t i = 0; i < count; ++i)
      out[i] = static_cast<uint8_t>(
          static_cast<int32_t>(round_code(std::min(std::max((x[i] - c + d) * inv_2d, 0.f), 1.f) * n)));
  }
  std::optional<CodeAffine> affine(const ActCodeSpec& s) const override {
    const double mul = static_cast<double>(levels(s)) / (2.0 * s.p1);
    return CodeAffine{mul, (-static_cast<double>(s.p0) + s.p1) * mul};
  }
};

class LsqActRule final : public ActCodeRule {
 public:
  std::string check(const ActCodeSpec& s) const override {
    return s.p0 > 0.f ? std::string() : detail::concat("needs a positive step, got ", s.p0);
  }
  uint8_t quantize(const ActCodeSpec& s, float x) const override {
    return static_cast<uint8_t>(std::nearbyint(std::min(std::max(x / s.p0, 0.f), static_cast<float>(levels(s)))));
  }
  void quantize_many(const ActCodeSpec& s, const float* x, int64_t count, uint8_t* out) const override {
    const float n = static_cast<float>(levels(s)), step = s.p0;
    for (int64_t i = 0; i < count; ++i)
      out[i] = static_cast<uint8_t>(static_cast<int32_t>(round_code(std::min(std::max(x[i] / step, 0.f), n))));
  }
  std::optional<CodeAffine> affine(const ActCodeSpec& s) const override { return CodeAffine{1.0 / s.p0, 0.0}; }
  std::optional<kernels::CodeMap> code_map(const ActCodeSpec& s) const override {
    return kernels::CodeMap{kernels::CodeMap::Form::divide_then_clip, 0.f, static_cast<float>(levels(s)), s.p0};
  }
};

class InputActRule final : public ActCodeRule {
 public:
  std::string check(const ActCodeSpec& s) const override {
    return s.bits >= 2 && s.p0 > 0.f
               ? std::string()
               : detail::concat("needs bits >= 2 and a positive step, got ", s.bits, " bits and step ", s.p0);
  }
  int32_t zero_point(const ActCodeSpec& s) const override { return (1 << (s.bits - 1)) - 1; }
  uint8_t quantize(const ActCodeSpec& s, float x) const override {
    const int q = zero_point(s);
    const float qf = static_cast<float>(q);
    return static_cast<uint8_t>(std::nearbyint(std::min(std::max(x / s.p0, -qf), qf)) + static_cast<float>(q));
  }
  void quantize_many(const ActCodeSpec& s, const float* x, int64_t count, uint8_t* out) const override {
    const float qf = static_cast<float>(zero_point(s)), step = s.p0;
    for (int64_t i = 0; i < count; ++i)
      out[i] = static_cast<uint8_t>(static_cast<int32_t>(round_code(std::min(std::max(x[i] / step, -qf), qf)) + qf));
  }
};

std::string names_where(bool (*pick)(const MethodCodes&)) {
  std::string out;
  for (const MethodCodes& m : method_codes())
    if (pick(m)) out += (out.empty() ? "" : ", ") + std::string(m.name);
  return out;
}

}  // namespace

const std::vector<MethodCodes>& method_codes() {
  static const DorefaActRule dorefa;
  static const PactActRule pact;
  static const QilActRule qil;
  static const LsqActRule lsq;
  static const InputActRule input;
  static const std::vector<MethodCodes> table = {
      {"dorefa", true, &dorefa}, {"pact", false, &pact}, {"sawb", true, nullptr},
      {"qil", true, &qil},       {"lsq", true, &lsq},    {"input", false, &input},
  };
  return table;
}

const MethodCodes* find_method_codes(const std::string& name) {
  for (const MethodCodes& m : method_codes())
    if (name == m.name) return &m;
  return nullptr;
}

std::string weight_method_names() {
  return names_where([](const MethodCodes& m) { return m.weights; });
}
std::string act_method_names() {
  return names_where([](const MethodCodes& m) { return m.act_rule != nullptr; });
}

const ActCodeRule& act_code_rule(const std::string& method) {
  const MethodCodes* m = find_method_codes(method);
  if (!m || !m->act_rule)
    throw Error(detail::concat("unknown activation quantizer method '", method, "' (known: ", act_method_names(), ")"));
  return *m->act_rule;
}

}  // namespace lowbit
