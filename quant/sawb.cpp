// sawb.cpp: SAWB statistics and the fused symmetric-grid op.
#include "quant/sawb.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "quant/fused.h"

namespace lowbit {

using quant_detail::for_chunks;
using quant_detail::reduce_chunks;

std::pair<double, double> sawb_coefficients(int bits) {
  switch (bits) {
    case 2: return {3.212, 2.178};
    case 3: return {7.509, 6.892};
    case 4: return {12.68, 12.80};
    case 5: return {17.74, 18.64};
    default: throw Error(detail::concat("sawb: no coefficients for ", bits, " bits (table covers 2..5)"));
  }
}

float sawb_alpha(const Tensor& w, int bits) {
  const float* wp = w.data();
  const int64_t n = w.numel();
  const float wmax = std::max(quant_detail::max_abs(wp, n), 1e-12f);
  if (bits < 2 || bits > 5) return wmax;
  auto s = reduce_chunks<2>(n, [&](int64_t b, int64_t e, double* acc) {
    for (int64_t i = b; i < e; ++i) {
      acc[0] += static_cast<double>(wp[i]) * wp[i];
      acc[1] += std::fabs(static_cast<double>(wp[i]));
    }
  });
  const auto [c1, c2] = sawb_coefficients(bits);
  const double alpha = c1 * std::sqrt(s[0] / n) - c2 * (s[1] / n);
  return alpha > 0 ? static_cast<float>(alpha) : wmax;
}

Tensor sawb_quantize(const Tensor& w, float alpha, int bits) {
  LOWBIT_CHECK(alpha > 0.f, "sawb: alpha_w must be positive, got ", alpha);
  const float n = static_cast<float>((1 << bits) - 1);
  Tensor y = Tensor::empty(w.shape());
  const float* wp = w.data();
  float* yp = y.data();
  for_chunks(w.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float v = std::min(std::max(wp[i] / alpha, -1.f), 1.f);
      yp[i] = alpha * (2.f * quant_detail::round_half_even(n * (v + 1.f) / 2.f) / n - 1.f);
    }
  });
  return record(y, "sawb", {w}, [w, alpha](const Tensor& g) -> std::vector<Tensor> {
    Tensor dw = Tensor::empty(w.shape());
    const float* wp = w.data();
    const float* gp = g.data();
    float* dp = dw.data();
    for_chunks(w.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dp[i] = std::fabs(wp[i]) <= alpha ? gp[i] : 0.f;
    });
    return {dw};
  });
}

SawbQuantizer::SawbQuantizer(int bits) : Quantizer(bits, QuantTarget::weight, false) {
  check_bits("sawb", bits, 2);
  register_buffer("alpha_w", alpha_w, Tensor::zeros({1}));
}

std::string SawbQuantizer::describe() const {
  return detail::concat("SawbQuantizer(", bits(), "b, alpha_w=", alpha_w->data()[0], use_max ? ", max" : "", ")");
}

Tensor SawbQuantizer::quantize(const Tensor& w) {
  float& a = alpha_w->data()[0];
  if (is_training() || a <= 0.f)
    a = use_max ? std::max(quant_detail::max_abs(w.data(), w.numel()), 1e-12f) : sawb_alpha(w, bits());
  return sawb_quantize(w, a, bits());
}

QuantizedCodes SawbQuantizer::codes(const Tensor& w) const {
  float a = alpha_w->data()[0];
  if (a <= 0.f) a = use_max ? std::max(quant_detail::max_abs(w.data(), w.numel()), 1e-12f) : sawb_alpha(w, bits());
  const float n = static_cast<float>(levels());
  QuantizedCodes q;
  q.shape = w.shape();
  q.bits = bits();
  q.grid = CodeGrid::odd_symmetric;
  q.scale = a;
  q.is_signed = true;
  q.codes.resize(static_cast<size_t>(w.numel()));
  for (int64_t i = 0; i < w.numel(); ++i) {
    const float v = std::min(std::max(w.data()[i] / a, -1.f), 1.f);
    q.codes[i] = static_cast<uint8_t>(quant_detail::round_half_even(n * (v + 1.f) / 2.f));
  }
  return q;
}

std::vector<std::pair<std::string, double>> SawbQuantizer::state_scalars() const {
  return {{"alpha_w", alpha_w->data()[0]}};
}

nlohmann::json SawbQuantizer::factory_options() const {
  return use_max ? nlohmann::json{{"sawb_max", true}} : nlohmann::json::object();
}

QuantizerMethod sawb_method() {
  auto make = [](int bits, const nlohmann::json& options) {
    auto q = std::make_shared<SawbQuantizer>(bits);
    q->use_max = options.is_object() && options.contains("sawb_max") && options["sawb_max"].is_boolean() &&
                 options["sawb_max"].get<bool>();
    return q;
  };
  return {"sawb", make, nullptr, nullptr, {}, {}};
}

}  // namespace lowbit
