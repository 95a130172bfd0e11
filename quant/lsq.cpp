// lsq.cpp: LSQ fused forward/backward (the step gradient deferred for a data-parallel weight replica).
#include "quant/lsq.h"

#include <cmath>

#include "core/autograd.h"
#include "core/deterministic_sum.h"
#include "core/error.h"
#include "core/layout.h"
#include "quant/fused.h"

namespace lowbit {

using quant_detail::for_chunks;
using quant_detail::reduce_chunks;

namespace {

// lsq_quantize's backward for one output gradient g: dv into dvp (when not null) and the step
// gradient ds, returned. One function for the one-process backward and for a data-parallel weight
// quantizer's deferred step gradient (quant/quantizer.h): the same g gives the same bits.
float lsq_backward(const Tensor& v, const Tensor& g_in, float s, float lo, float hi, double g_scale, float* dvp) {
  const Tensor g = to_layout(g_in, v.layout());  // dvp, like v, in v's layout
  const float* vp = v.raw_data();
  const float* gp = g.raw_data();
  // ds is a sum over the batch (over dimension 0 for weights): per-chunk sums, scaled and rounded
  // to float before the fixed float tree, so that the tree's root is the gradient itself
  // (core/deterministic_sum.h: thread-count and rank-split invariant).
  const int64_t rows = v.dim() ? v.size(0) : 1;
  auto sum = batch_sum_elements<float>(v.numel(), rows, 1, [&](int64_t b, int64_t e, float* acc) {
    double ds = 0;
    for (int64_t i = b; i < e; ++i) {
      const float r = vp[i] / s;
      const bool inside = r > lo && r < hi;
      if (dvp) dvp[i] = inside ? gp[i] : 0.f;
      const float dq = inside ? quant_detail::round_half_even(r) - r : (r <= lo ? lo : hi);
      ds += static_cast<double>(gp[i]) * dq;
    }
    acc[0] = static_cast<float>(ds * g_scale);
  });
  return sum[0];
}

}  // namespace

Tensor lsq_quantize(const Tensor& v, const Tensor& s_t, int qn, int qp, double grad_scale_n,
                    const ParamGradientDeferral& defer) {
  LOWBIT_CHECK(s_t.numel() == 1, "lsq: s must have one element, got shape ", to_string(s_t.shape()));
  const float s = s_t.data()[0];
  LOWBIT_CHECK(s > 0.f, "lsq: step size s must be positive, got ", s);
  const float lo = -static_cast<float>(qn), hi = static_cast<float>(qp);
  Tensor y = Tensor::empty(v.shape(), v.layout());  // any layout: elementwise
  const float* vp = v.raw_data();
  float* yp = y.raw_data();
  for_chunks(v.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) yp[i] = quant_detail::round_half_even(std::min(std::max(vp[i] / s, lo), hi)) * s;
  });
  const double g_scale = 1.0 / std::sqrt(grad_scale_n * qp);
  return record(y, "lsq", {v, s_t}, [v, s_t, s, lo, hi, g_scale, defer](const Tensor& g_in) -> std::vector<Tensor> {
    const Tensor g = to_layout(g_in, v.layout());
    Tensor dv;
    if (v.requires_grad()) dv = Tensor::empty(v.shape(), v.layout());
    const float ds = lsq_backward(v, g, s, lo, hi, g_scale, dv.defined() ? dv.raw_data() : nullptr);
    if (!defer) return {dv, Tensor::full({1}, ds)};
    // A replica: ds of this rank's g is dropped; the averaged g gives one process's ds.
    if (s_t.requires_grad())
      defer(g, [v, s_t, s, lo, hi, g_scale](const Tensor& g_all) {
        accumulate_grad(s_t, Tensor::full({1}, lsq_backward(v, g_all, s, lo, hi, g_scale, nullptr)));
      });
    return {dv, Tensor()};
  });
}

LsqQuantizer::LsqQuantizer(int bits, QuantTarget target) : Quantizer(bits, target, true) {
  check_bits("lsq", bits, target == QuantTarget::weight ? 2 : 1);
  register_parameter("s", s, Tensor::full({1}, 1.f));
}

int LsqQuantizer::qn() const { return target() == QuantTarget::weight ? 1 << (bits() - 1) : 0; }
int LsqQuantizer::qp() const { return target() == QuantTarget::weight ? (1 << (bits() - 1)) - 1 : (1 << bits()) - 1; }

std::string LsqQuantizer::describe() const {
  return detail::concat(type_name(), "(", bits(), "b, s=", s->data()[0], ")");
}

void LsqQuantizer::initialize(const Tensor& v) {
  auto sum = reduce_chunks<1>(v.numel(), [&](int64_t b, int64_t e, double* acc) {
    for (int64_t i = b; i < e; ++i) acc[0] += std::fabs(static_cast<double>(v.data()[i]));
  });
  const double mean_abs = v.numel() ? sum[0] / v.numel() : 0.0;
  s->data()[0] = static_cast<float>(std::max(2.0 * mean_abs / std::sqrt(static_cast<double>(qp())), kMinStep));
}

Tensor LsqQuantizer::quantize(const Tensor& v) {
  const double n = target() == QuantTarget::weight || v.dim() == 0 || v.size(0) == 0
                       ? static_cast<double>(v.numel())
                       : static_cast<double>(v.numel() / v.size(0));
  // Weights as a replica: s's gradient waits for the global weight gradient (quant/quantizer.h).
  return lsq_quantize(v, s, qn(), qp(), n,
                      defers_param_gradients() ? param_gradient_deferral() : ParamGradientDeferral());
}

void LsqQuantizer::set_clip(float clip) {
  LOWBIT_CHECK(clip > 0.f && std::isfinite(clip), "lsq: clip must be positive and finite, got ", clip);
  s->data()[0] = clip / static_cast<float>(qp());
  mark_initialized();
}

QuantizedCodes LsqQuantizer::codes(const Tensor& v) const {
  const float st = s->data()[0], lo = -static_cast<float>(qn()), hi = static_cast<float>(qp());
  QuantizedCodes out;
  out.shape = v.shape();
  out.bits = bits();
  out.scale = st;
  out.zero_point = qn();
  out.is_signed = qn() > 0;
  out.codes.resize(static_cast<size_t>(v.numel()));
  for (int64_t i = 0; i < v.numel(); ++i)
    out.codes[i] = static_cast<uint8_t>(quant_detail::round_half_even(std::min(std::max(v.data()[i] / st, lo), hi)) + qn());
  return out;
}

std::vector<QuantParamSpec> LsqQuantizer::param_specs() {
  return {{"s", s, "lsq.s", kMinStep, false, nullptr}};
}

ActCodeSpec LsqQuantizer::code_spec() const {
  if (target() == QuantTarget::weight) return Quantizer::code_spec();  // throws: a weight quantizer
  return {"lsq", bits(), s->data()[0], 0.f};
}

QuantizerMethod lsq_method() {
  return {"lsq", [](int bits, const nlohmann::json&) { return std::make_shared<LsqQuantizer>(bits, QuantTarget::weight); },
          [](int bits, const nlohmann::json&) { return std::make_shared<LsqQuantizer>(bits, QuantTarget::activation); },
          &act_code_rule("lsq"),
          // Learned step sizes: a gentler start (lr 0.02).
          {{"lsq", "lsq", "lsq", "LSQ learned step sizes, weights and activations",
            [](QatRecipe& r, const RecipeContext&) { r.lr = 0.02; }}},
          {}};
}

}  // namespace lowbit
