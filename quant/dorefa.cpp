// dorefa.cpp: DoReFa weight and activation fake quantization, fused passes.
#include "quant/dorefa.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/layout.h"
#include "quant/fused.h"

namespace lowbit {

using quant_detail::for_chunks;

namespace {
// max|tanh(w)| = tanh(max|w|) (tanh is odd and monotone); guarded away from 0 (all-zero layer).
float max_abs_tanh(const Tensor& w) {
  return std::max(std::tanh(quant_detail::max_abs(w.data(), w.numel())), 1e-12f);
}
}  // namespace

Tensor dorefa_weight_quantize(const Tensor& w, int bits) {
  const float n = static_cast<float>((1 << bits) - 1);
  const float m = max_abs_tanh(w);
  const float half_inv_m = 0.5f / m;
  Tensor y = Tensor::empty(w.shape());
  const float* wp = w.data();
  float* yp = y.data();
  for_chunks(w.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float u = std::tanh(wp[i]) * half_inv_m + 0.5f;
      yp[i] = 2.f * (quant_detail::round_half_even(n * u) / n) - 1.f;
    }
  });
  return record(y, "dorefa_weight", {w}, [w, m](const Tensor& g) -> std::vector<Tensor> {
    Tensor dw = Tensor::empty(w.shape());
    const float* wp = w.data();
    const float* gp = g.data();
    float* dp = dw.data();
    const float inv_m = 1.f / m;
    for_chunks(w.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const float t = std::tanh(wp[i]);
        dp[i] = gp[i] * (1.f - t * t) * inv_m;
      }
    });
    return {dw};
  });
}

Tensor dorefa_act_quantize(const Tensor& x, int bits) {
  const float n = static_cast<float>((1 << bits) - 1);
  Tensor y = Tensor::empty(x.shape(), x.layout());  // any layout: elementwise
  const float* xp = x.raw_data();
  float* yp = y.raw_data();
  for_chunks(x.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) yp[i] = quant_detail::round_half_even(n * std::min(std::max(xp[i], 0.f), 1.f)) / n;
  });
  return record(y, "dorefa_act", {x}, [x](const Tensor& g_in) -> std::vector<Tensor> {
    const Tensor g = to_layout(g_in, x.layout());
    Tensor dx = Tensor::empty(x.shape(), x.layout());
    const float* xp = x.raw_data();
    const float* gp = g.raw_data();
    float* dp = dx.raw_data();
    for_chunks(x.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dp[i] = (xp[i] >= 0.f && xp[i] <= 1.f) ? gp[i] : 0.f;
    });
    return {dx};
  });
}

DorefaWeightQuantizer::DorefaWeightQuantizer(int bits) : Quantizer(bits, QuantTarget::weight, false) {
  check_bits("dorefa weight", bits, 2);
}

std::string DorefaWeightQuantizer::describe() const { return detail::concat("DorefaWeightQuantizer(", bits(), "b)"); }

Tensor DorefaWeightQuantizer::quantize(const Tensor& w) { return dorefa_weight_quantize(w, bits()); }

QuantizedCodes DorefaWeightQuantizer::codes(const Tensor& w) const {
  const float n = static_cast<float>(levels());
  const float half_inv_m = 0.5f / max_abs_tanh(w);
  QuantizedCodes q;
  q.shape = w.shape();
  q.bits = bits();
  q.grid = CodeGrid::odd_symmetric;
  q.scale = 1.f;
  q.is_signed = true;
  q.codes.resize(static_cast<size_t>(w.numel()));
  for (int64_t i = 0; i < w.numel(); ++i)
    q.codes[i] = static_cast<uint8_t>(quant_detail::round_half_even(n * (std::tanh(w.data()[i]) * half_inv_m + 0.5f)));
  return q;
}

DorefaActQuantizer::DorefaActQuantizer(int bits) : Quantizer(bits, QuantTarget::activation, false) {
  check_bits("dorefa activation", bits);
}

std::string DorefaActQuantizer::describe() const { return detail::concat("DorefaActQuantizer(", bits(), "b)"); }

Tensor DorefaActQuantizer::quantize(const Tensor& x) { return dorefa_act_quantize(x, bits()); }

QuantizedCodes DorefaActQuantizer::codes(const Tensor& x) const {
  const float n = static_cast<float>(levels());
  QuantizedCodes q;
  q.shape = x.shape();
  q.bits = bits();
  q.scale = 1.f / n;
  q.codes.resize(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i)
    q.codes[i] = static_cast<uint8_t>(quant_detail::round_half_even(n * std::min(std::max(x.data()[i], 0.f), 1.f)));
  return q;
}

QuantizerMethod dorefa_method() {
  return {"dorefa", [](int bits, const nlohmann::json&) { return std::make_shared<DorefaWeightQuantizer>(bits); },
          [](int bits, const nlohmann::json&) { return std::make_shared<DorefaActQuantizer>(bits); },
          &act_code_rule("dorefa"),
          {{"dorefa", "dorefa", "dorefa", "DoReFa weights and activations", nullptr}},
          {}};
}

}  // namespace lowbit
