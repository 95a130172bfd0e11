// pact.cpp: PACT forward/backward as one fused pass each.
#include "quant/pact.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/autograd.h"
#include "core/deterministic_sum.h"
#include "core/error.h"
#include "core/layout.h"
#include "quant/clip_search.h"
#include "quant/fused.h"

namespace lowbit {

using quant_detail::for_chunks;

const char* pact_init_name(PactInit init) {
  switch (init) {
    case PactInit::fixed: return "fixed";
    case PactInit::mse: return "mse";
    case PactInit::percentile99: return "p99";
  }
  return "?";
}

PactInitSpec parse_pact_init(const std::string& text) {
  if (text == "fixed") return {PactInit::fixed, 10.f};
  if (text == "mse") return {PactInit::mse, 10.f};
  if (text == "p99") return {PactInit::percentile99, 10.f};
  char* end = nullptr;
  const float value = std::strtof(text.c_str(), &end);
  LOWBIT_CHECK(!text.empty() && end == text.c_str() + text.size() && std::isfinite(value) && value > 0.f,
               "unknown PACT init '", text, "' (expected mse | p99 | fixed | a positive start value such as 1.0)");
  return {PactInit::fixed, value};
}

namespace {
// dx[i] = g[i] on [0, alpha), else 0; returns the sum of g over x >= alpha. Branch-free with
// __restrict pointers and 8 independent float lanes so the compiler vectorises it (random signs
// make a branchy loop mispredict half the time: ~10x slower). Blocks of <= 1024 elements keep the
// float lanes accurate; the caller accumulates blocks in double.
template <bool kWithDx>
double pact_backward_block(const float* __restrict x, const float* __restrict g, float* __restrict dx, int64_t n,
                           float a) {
  float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      const float xi = x[i + j], gi = g[i + j];
      if constexpr (kWithDx) dx[i + j] = ((xi >= 0.f) & (xi < a)) ? gi : 0.f;
      lane[j] += xi >= a ? gi : 0.f;
    }
  for (; i < n; ++i) {
    if constexpr (kWithDx) dx[i] = ((x[i] >= 0.f) & (x[i] < a)) ? g[i] : 0.f;
    lane[0] += x[i] >= a ? g[i] : 0.f;
  }
  double sum = 0;
  for (float l : lane) sum += l;
  return sum;
}

// The backward over n elements in blocks of 1024, the blocks' sums added in double.
template <bool kWithDx>
double pact_backward_span(const float* x, const float* g, float* dx, int64_t n, float a) {
  double sum = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 1024)
    sum += pact_backward_block<kWithDx>(x + i0, g + i0, kWithDx ? dx + i0 : nullptr, std::min<int64_t>(1024, n - i0), a);
  return sum;
}

// y = round(clip(x, 0, a) * n / a) * a / n over `count` elements (y may be x).
void pact_forward_span(const float* x, float* y, int64_t count, float a, int bits) {
  const float n = static_cast<float>((1 << bits) - 1);
  const float inv = n / a, scale = a / n;
  for (int64_t i = 0; i < count; ++i) {
    const float c = std::min(std::max(x[i], 0.f), a);
    y[i] = quant_detail::round_half_even(c * inv) * scale;
  }
}
}  // namespace

Tensor pact_quantize(const Tensor& x, const Tensor& alpha, int bits) {
  LOWBIT_CHECK(alpha.numel() == 1, "pact: alpha must have one element, got shape ", to_string(alpha.shape()));
  const float a = alpha.data()[0];
  LOWBIT_CHECK(a > 0.f, "pact: alpha must be positive, got ", a);
  Tensor y = Tensor::empty(x.shape(), x.layout());  // any layout: elementwise
  const float* xp = x.raw_data();
  float* yp = y.raw_data();
  for_chunks(x.numel(), [&](int64_t b, int64_t e) { pact_forward_span(xp + b, yp + b, e - b, a, bits); });
  return record(y, "pact", {x, alpha}, [x, a](const Tensor& g_in) -> std::vector<Tensor> {
    const Tensor g = to_layout(g_in, x.layout());
    const float* xp = x.raw_data();
    const float* gp = g.raw_data();
    const int64_t count = x.numel();
    Tensor dx;
    float* dp = nullptr;
    if (x.requires_grad()) {
      dx = Tensor::empty(x.shape(), x.layout());
      dp = dx.raw_data();
    }
    // One pass: dx and the sum of g over the clipped elements, a sum over the batch: per-chunk
    // sums rounded to float, then the fixed float tree (core/deterministic_sum.h).
    const int64_t images = x.dim() ? x.size(0) : 1;
    auto s = batch_sum_elements<float>(count, images, 1, [&](int64_t b, int64_t e, float* acc) {
      acc[0] = static_cast<float>(dp ? pact_backward_span<true>(xp + b, gp + b, dp + b, e - b, a)
                                     : pact_backward_span<false>(xp + b, gp + b, nullptr, e - b, a));
    });
    return {dx, Tensor::full({1}, s[0])};
  });
}

PactQuantizer::PactQuantizer(int bits, PactInit init, float init_alpha)
    : Quantizer(bits, QuantTarget::activation, init != PactInit::fixed), init(init), init_alpha(init_alpha) {
  check_bits("pact", bits);
  LOWBIT_CHECK(init_alpha > 0.f, "pact: init alpha must be positive, got ", init_alpha);
  register_parameter("alpha", alpha, Tensor::full({1}, init_alpha));
}

nlohmann::json PactQuantizer::factory_options() const {
  if (init != PactInit::fixed) return {{"pact_init", pact_init_name(init)}};
  // A fixed start other than the paper's 10 is written as its number (parse_pact_init reads it back).
  return {{"pact_init", init_alpha == 10.f ? std::string("fixed") : nlohmann::json(init_alpha).dump()}};
}

std::string PactQuantizer::describe() const {
  return detail::concat("PactQuantizer(", bits(), "b, alpha=", alpha->data()[0], ", init ", pact_init_name(init),
                        ")");
}

void PactQuantizer::initialize(const Tensor& x) {
  float a = init == PactInit::mse ? mse_optimal_clip(x.data(), x.numel(), bits())
                                  : positive_percentile(x.data(), x.numel(), 99.0);
  alpha->data()[0] = std::max(a, static_cast<float>(kMinAlpha));
}

Tensor PactQuantizer::quantize(const Tensor& x) { return pact_quantize(x, alpha, bits()); }

std::optional<FusedActivation> PactQuantizer::fused_quantize() const {
  const float a = alpha->data()[0];
  LOWBIT_CHECK(a > 0.f, "pact: alpha must be positive, got ", a);
  const int b = bits();
  return FusedActivation{[a, b](const float* x, float* y, int64_t n) { pact_forward_span(x, y, n, a, b); },
                         [a](const float* x, const float* g, float* dx, int64_t n) {
                           return pact_backward_span<true>(x, g, dx, n, a);
                         },
                         alpha};
}

void PactQuantizer::set_clip(float clip) {
  LOWBIT_CHECK(clip > 0.f && std::isfinite(clip), "pact: clip must be positive and finite, got ", clip);
  alpha->data()[0] = clip;
  mark_initialized();
}

QuantizedCodes PactQuantizer::codes(const Tensor& x) const {
  const float a = alpha->data()[0];
  QuantizedCodes q;
  q.shape = x.shape();
  q.bits = bits();
  q.scale = a / static_cast<float>(levels());
  q.codes.resize(static_cast<size_t>(x.numel()));
  const float inv = static_cast<float>(levels()) / a;
  for (int64_t i = 0; i < x.numel(); ++i)
    q.codes[i] = static_cast<uint8_t>(quant_detail::round_half_even(std::min(std::max(x.data()[i], 0.f), a) * inv));
  return q;
}

std::vector<QuantParamSpec> PactQuantizer::param_specs() {
  return {{"alpha", alpha, "pact.alpha", kMinAlpha, true, nullptr}};
}

QuantizerMethod pact_method() {
  auto make = [](int bits, const nlohmann::json& options) {
    const std::string init =
        options.is_object() && options.contains("pact_init") ? options["pact_init"].get<std::string>() : "mse";
    const PactInitSpec spec = parse_pact_init(init);
    return std::make_shared<PactQuantizer>(bits, spec.init, spec.alpha);
  };
  // PACT's alpha gradient only widens the clip (it lacks the step-size term LSQ's has); from
  // trained weights the MSE start is already the optimum, and alpha at lr x 0.01 keeps it there:
  // 2-epoch W2A2 fine-tunes 91.84 -> 92.10 (convnet), 92.28 -> 92.62 (resnet20), DoReFa 92.08 / 91.69.
  auto hold_alpha = [](QatRecipe& r, const RecipeContext& c) {
    if (c.fine_tune) r.quant_lr_mult = 0.01;
  };
  MethodOption init{"pact_init", "mse",
                    "PACT alpha init: mse (first-batch MSE optimum) | p99 | fixed (10) | a start value, e.g. 1.0",
                    [](const std::string& v) { parse_pact_init(v); }};
  return {"pact",
          nullptr,
          make,
          &act_code_rule("pact"),
          {{"pact", "dorefa", "pact", "PACT activations + DoReFa weights", nullptr},
           {"pact-sawb", "sawb", "pact", "PACT activations + SAWB weights, the 2-bit recipe", hold_alpha}},
          {init}};
}

}  // namespace lowbit
