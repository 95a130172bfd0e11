// qil.cpp: QIL weight and activation transformers with their interval-parameter gradients (the
// weight side's deferred for a data-parallel replica, quant/quantizer.h).
// Weight math runs in double (weights are small tensors; the c/d/gamma sums are long).
#include "quant/qil.h"

#include <array>
#include <cmath>

#include "core/autograd.h"
#include "core/deterministic_sum.h"
#include "core/error.h"
#include "core/layout.h"
#include "quant/clip_search.h"
#include "quant/fused.h"
#include "quant/sawb.h"

namespace lowbit {

using quant_detail::for_chunks;
using quant_detail::reduce_chunks;

namespace {
float scalar_of(const Tensor& t, const char* what) {
  LOWBIT_CHECK(t.numel() == 1, "qil: ", what, " must have one element, got shape ", to_string(t.shape()));
  return t.data()[0];
}
}  // namespace

namespace {

// qil_weight_quantize's backward for one output gradient g: dw into dwp (when not null) and the
// raw sums {dc, dd, dgamma}, returned. One function for the one-process backward and for a
// data-parallel weight quantizer's deferred interval gradients (quant/quantizer.h): the same g
// gives the same bits.
std::array<float, 3> qil_weight_backward(const Tensor& w, const Tensor& g, double c, double d, double gamma,
                                         double inv_2d, float* dwp) {
  const float* wp = w.data();
  const float* gp = g.data();
  auto sums = reduce_chunks<3>(w.numel(), [&](int64_t b, int64_t e, double* acc) {
    for (int64_t i = b; i < e; ++i) {
      const double a = std::fabs(static_cast<double>(wp[i]));
      const double s = wp[i] > 0 ? 1.0 : (wp[i] < 0 ? -1.0 : 0.0);
      const double u = (a - c + d) * inv_2d;
      if (!(u > 0 && u < 1)) {
        if (dwp) dwp[i] = 0.f;
        continue;
      }
      const double gi = gp[i];
      const double ln_u = std::log(std::max(u, 1e-12));
      const double u_g = std::exp(gamma * ln_u);          // u^gamma
      const double slope = gamma * (u_g / u) * inv_2d;    // gamma u^(gamma-1) / (2d)
      if (dwp) dwp[i] = static_cast<float>(gi * slope);
      acc[0] += -gi * s * slope;                          // dc
      acc[1] += gi * s * slope * (c - a) / d;             // dd = ... (c - |w|) / (2d^2)
      acc[2] += gi * s * u_g * ln_u;                      // dgamma
    }
  });
  return {static_cast<float>(sums[0]), static_cast<float>(sums[1]), static_cast<float>(sums[2])};
}

}  // namespace

Tensor qil_weight_quantize(const Tensor& w, const Tensor& c_t, const Tensor& d_t, const Tensor& gamma_t, int bits,
                           const ParamGradientDeferral& defer) {
  const double c = scalar_of(c_t, "c"), d = scalar_of(d_t, "d"), gamma = scalar_of(gamma_t, "gamma");
  LOWBIT_CHECK(d > 0, "qil: d must be positive, got ", d);
  const double q = static_cast<double>((1 << (bits - 1)) - 1);
  const double inv_2d = 1.0 / (2.0 * d);
  Tensor y = Tensor::empty(w.shape());
  const float* wp = w.data();
  float* yp = y.data();
  for_chunks(w.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const double a = std::fabs(static_cast<double>(wp[i]));
      const double s = wp[i] > 0 ? 1.0 : (wp[i] < 0 ? -1.0 : 0.0);
      const double u = (a - c + d) * inv_2d;
      const double what = u <= 0 ? 0.0 : (u >= 1 ? s : s * std::pow(u, gamma));
      yp[i] = static_cast<float>(std::nearbyint(what * q) / q);
    }
  });
  return record(y, "qil_weight", {w, c_t, d_t, gamma_t},
                [w, c_t, d_t, gamma_t, c, d, gamma, inv_2d, defer](const Tensor& g) -> std::vector<Tensor> {
    if (!defer) {
      Tensor dw;
      if (w.requires_grad()) dw = Tensor::empty(w.shape());
      const auto sums = qil_weight_backward(w, g, c, d, gamma, inv_2d, dw.defined() ? dw.data() : nullptr);
      return {dw, Tensor::full({1}, sums[0]), Tensor::full({1}, sums[1]), Tensor::full({1}, sums[2])};
    }
    // A replica: everything comes from the averaged g. Unlike LSQ's masked dw = g (exact, so the
    // average of the ranks' dw is one process's), dw = g * slope rounds, and the average of rounded
    // products is not the rounded product of the average: a leaf weight's dw waits for g too. A
    // weight computed by other ops takes its dw from this rank's g now (within float rounding).
    const bool defer_dw = w.requires_grad() && !w.grad_fn();
    Tensor dw;
    if (w.requires_grad() && !defer_dw) {
      dw = Tensor::empty(w.shape());
      qil_weight_backward(w, g, c, d, gamma, inv_2d, dw.data());
    }
    if (defer_dw || c_t.requires_grad() || d_t.requires_grad() || gamma_t.requires_grad())
      defer(g, [w, c_t, d_t, gamma_t, c, d, gamma, inv_2d, defer_dw](const Tensor& g_all) {
        Tensor dw_all;
        if (defer_dw) dw_all = Tensor::empty(w.shape());
        const auto all = qil_weight_backward(w, g_all, c, d, gamma, inv_2d, defer_dw ? dw_all.data() : nullptr);
        if (defer_dw) accumulate_grad(w, dw_all);
        const Tensor* params[3] = {&c_t, &d_t, &gamma_t};
        for (int k = 0; k < 3; ++k)
          if (params[k]->requires_grad()) accumulate_grad(*params[k], Tensor::full({1}, all[k]));
      });
    return {dw, Tensor(), Tensor(), Tensor()};
  });
}

Tensor qil_act_quantize(const Tensor& x, const Tensor& c_t, const Tensor& d_t, int bits) {
  const float c = scalar_of(c_t, "c"), d = scalar_of(d_t, "d");
  LOWBIT_CHECK(d > 0, "qil: d must be positive, got ", d);
  const float n = static_cast<float>((1 << bits) - 1);
  const float inv_2d = 1.f / (2.f * d);
  Tensor y = Tensor::empty(x.shape(), x.layout());  // any layout: elementwise
  const float* xp = x.raw_data();
  float* yp = y.raw_data();
  for_chunks(x.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float u = std::min(std::max((xp[i] - c + d) * inv_2d, 0.f), 1.f);
      yp[i] = quant_detail::round_half_even(u * n) / n;
    }
  });
  return record(y, "qil_act", {x, c_t, d_t}, [x, c, d, inv_2d](const Tensor& g_in) -> std::vector<Tensor> {
    const Tensor g = to_layout(g_in, x.layout());
    const float* xp = x.raw_data();
    const float* gp = g.raw_data();
    Tensor dx;
    float* dxp = nullptr;
    if (x.requires_grad()) {
      dx = Tensor::empty(x.shape(), x.layout());
      dxp = dx.raw_data();
    }
    // dc, dd are sums over the batch: per-chunk sums, scaled and rounded to float before the fixed
    // float tree (core/deterministic_sum.h: thread-count and rank-split invariant).
    const double inv2d = 1.0 / (2.0 * d);
    const int64_t images = x.dim() ? x.size(0) : 1;
    auto sums = batch_sum_elements<float>(x.numel(), images, 2, [&](int64_t b, int64_t e, float* acc) {
      double sg = 0, sgx = 0;  // sum of g and of g*(c - x) over the inside
      for (int64_t i = b; i < e; ++i) {
        const float u = (xp[i] - c + d) * inv_2d;
        const bool inside = u > 0.f && u < 1.f;
        if (dxp) dxp[i] = inside ? gp[i] * inv_2d : 0.f;
        if (inside) {
          sg += gp[i];
          sgx += static_cast<double>(gp[i]) * (static_cast<double>(c) - xp[i]);
        }
      }
      acc[0] = static_cast<float>(-sg * inv2d);
      acc[1] = static_cast<float>(sgx * inv2d / d);
    });
    return {dx, Tensor::full({1}, sums[0]), Tensor::full({1}, sums[1])};
  });
}

// ---- weights ----

QilWeightQuantizer::QilWeightQuantizer(int bits) : Quantizer(bits, QuantTarget::weight, true) {
  check_bits("qil weight", bits, 2);
  register_parameter("c", c, Tensor::full({1}, 0.5f));
  register_parameter("d", d, Tensor::full({1}, 0.5f));
  register_parameter("gamma", gamma, Tensor::full({1}, 1.f));
  register_buffer("numel", numel, Tensor::zeros({1}));
}

std::string QilWeightQuantizer::describe() const {
  return detail::concat("QilWeightQuantizer(", bits(), "b, c=", c->data()[0], ", d=", d->data()[0],
                        ", gamma=", gamma->data()[0], ")");
}

void QilWeightQuantizer::initialize(const Tensor& w) {
  const float alpha = sawb_alpha(w, bits());
  c->data()[0] = alpha / 2;
  d->data()[0] = alpha / 2;
  gamma->data()[0] = 1.f;
}

Tensor QilWeightQuantizer::quantize(const Tensor& w) {
  numel->data()[0] = static_cast<float>(w.numel());
  // As a replica: c/d/gamma's gradients wait for the global weight gradient (quant/quantizer.h).
  return qil_weight_quantize(w, c, d, gamma, bits(),
                             defers_param_gradients() ? param_gradient_deferral() : ParamGradientDeferral());
}

QuantizedCodes QilWeightQuantizer::codes(const Tensor& w) const {
  const int q = (1 << (bits() - 1)) - 1;
  Tensor y;
  {
    NoGradGuard no_grad;
    y = qil_weight_quantize(w, c, d, gamma, bits());
  }
  QuantizedCodes out;
  out.shape = w.shape();
  out.bits = bits();
  out.scale = 1.f / static_cast<float>(q);
  out.zero_point = q;
  out.is_signed = true;
  out.codes.resize(static_cast<size_t>(w.numel()));
  for (int64_t i = 0; i < w.numel(); ++i)
    out.codes[i] = static_cast<uint8_t>(std::lround(y.data()[i] * q) + q);
  return out;
}

std::vector<QuantParamSpec> QilWeightQuantizer::param_specs() {
  const double q = (1 << (bits() - 1)) - 1;
  auto scale = [count_t = numel.tensor(), q] {  // the buffer's handle: same tensor after a load
    const double count = count_t.data()[0];
    return count > 0 ? 1.0 / std::sqrt(count * q) : 0.0;  // 0 until the first forward saw the layer
  };
  return {{"c", c, "qil.c", -INFINITY, false, scale},
          {"d", d, "qil.d", kMinD, false, scale},
          {"gamma", gamma, "qil.gamma", kMinGamma, false, scale}};
}

// ---- activations ----

QilActQuantizer::QilActQuantizer(int bits) : Quantizer(bits, QuantTarget::activation, true) {
  check_bits("qil activation", bits);
  register_parameter("c", c, Tensor::full({1}, 0.5f));
  register_parameter("d", d, Tensor::full({1}, 0.5f));
  register_buffer("features", features, Tensor::zeros({1}));
}

std::string QilActQuantizer::describe() const {
  return detail::concat("QilActQuantizer(", bits(), "b, c=", c->data()[0], ", d=", d->data()[0], ")");
}

void QilActQuantizer::initialize(const Tensor& x) {
  const float alpha = mse_optimal_clip(x.data(), x.numel(), bits());
  c->data()[0] = alpha / 2;
  d->data()[0] = alpha / 2;
}

Tensor QilActQuantizer::quantize(const Tensor& x) {
  if (x.dim() >= 1 && x.size(0) > 0) features->data()[0] = static_cast<float>(x.numel() / x.size(0));
  return qil_act_quantize(x, c, d, bits());
}

void QilActQuantizer::set_clip(float clip) {
  LOWBIT_CHECK(clip > 0.f && std::isfinite(clip), "qil: clip must be positive and finite, got ", clip);
  c->data()[0] = clip / 2;
  d->data()[0] = clip / 2;
  mark_initialized();
}

QuantizedCodes QilActQuantizer::codes(const Tensor& x) const {
  const float cc = c->data()[0], dd = d->data()[0], n = static_cast<float>(levels());
  QuantizedCodes out;
  out.shape = x.shape();
  out.bits = bits();
  out.scale = 1.f / n;
  out.codes.resize(static_cast<size_t>(x.numel()));
  const float inv_2d = 1.f / (2.f * dd);
  for (int64_t i = 0; i < x.numel(); ++i)
    out.codes[i] = static_cast<uint8_t>(
        quant_detail::round_half_even(std::min(std::max((x.data()[i] - cc + dd) * inv_2d, 0.f), 1.f) * n));
  return out;
}

std::vector<QuantParamSpec> QilActQuantizer::param_specs() {
  const double n = levels();
  auto scale = [count_t = features.tensor(), n] {
    const double count = count_t.data()[0];
    return count > 0 ? 1.0 / std::sqrt(count * n) : 0.0;  // 0 until the first forward saw a batch
  };
  return {{"c", c, "qil.c", -INFINITY, false, scale}, {"d", d, "qil.d", kMinD, false, scale}};
}

QuantizerMethod qil_method() {
  return {"qil", [](int bits, const nlohmann::json&) { return std::make_shared<QilWeightQuantizer>(bits); },
          [](int bits, const nlohmann::json&) { return std::make_shared<QilActQuantizer>(bits); },
          &act_code_rule("qil"),
          // Learned intervals: a gentler start (lr 0.02).
          {{"qil", "qil", "qil", "QIL learned intervals, weights and activations",
            [](QatRecipe& r, const RecipeContext&) { r.lr = 0.02; }}},
          {}};
}

}  // namespace lowbit
