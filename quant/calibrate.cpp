// calibrate.cpp: histogram collection through quantizer observers, percentile and KL thresholds.
#include "quant/calibrate.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "quant/fused.h"
#include "quant/input_quantizer.h"
#include "quant/quantizer.h"
#include "quant/sawb.h"

namespace lowbit {

const char* calibration_method_name(CalibrationMethod m) {
  switch (m) {
    case CalibrationMethod::max: return "max";
    case CalibrationMethod::fraction_of_max: return "fraction";
    case CalibrationMethod::percentile: return "percentile";
    case CalibrationMethod::kl: return "kl";
  }
  return "?";
}

CalibrationMethod calibration_method_from_name(const std::string& name) {
  if (name == "max") return CalibrationMethod::max;
  if (name == "fraction") return CalibrationMethod::fraction_of_max;
  if (name == "percentile") return CalibrationMethod::percentile;
  if (name == "kl") return CalibrationMethod::kl;
  throw Error("unknown calibration method '" + name + "' (expected max | fraction | percentile | kl)");
}

double percentile_threshold(const std::vector<double>& hist, double bin_width, double percent) {
  LOWBIT_CHECK(!hist.empty() && bin_width > 0, "percentile_threshold: empty histogram");
  double total = 0;
  for (double h : hist) total += h;
  if (total <= 0) return bin_width * static_cast<double>(hist.size());
  const double target = std::clamp(percent, 0.0, 100.0) / 100.0 * total;
  double cum = 0;
  for (size_t i = 0; i < hist.size(); ++i) {
    cum += hist[i];
    if (cum >= target) return bin_width * static_cast<double>(i + 1);
  }
  return bin_width * static_cast<double>(hist.size());
}

namespace {
// Normalise to sum 1, then give zero entries eps taken evenly from the non-zero ones.
void normalise_and_smooth(std::vector<double>& d) {
  constexpr double eps = 1e-4;
  double sum = 0;
  size_t zeros = 0;
  for (double v : d) {
    sum += v;
    zeros += v == 0;
  }
  const size_t nonzeros = d.size() - zeros;
  if (sum <= 0 || nonzeros == 0) return;
  const double eps1 = eps * static_cast<double>(zeros) / static_cast<double>(nonzeros);
  for (double& v : d) v = v == 0 ? eps : std::max(v / sum - eps1, 1e-12);
}
}  // namespace

double kl_threshold(const std::vector<double>& hist, double bin_width, int levels) {
  const int bins = static_cast<int>(hist.size());
  LOWBIT_CHECK(levels >= 2 && bins > levels && bin_width > 0, "kl_threshold: need more bins (", bins,
               ") than levels (", levels, ")");
  std::vector<double> suffix(bins + 1, 0.0);  // suffix[i] = sum(hist[i:])
  for (int i = bins - 1; i >= 0; --i) suffix[i] = suffix[i + 1] + hist[i];
  double best_kl = INFINITY;
  int best_i = bins - 1;
  std::vector<double> p, q;
  for (int i = levels; i < bins; ++i) {
    p.assign(hist.begin(), hist.begin() + i);
    p[i - 1] += suffix[i];
    q.assign(i, 0.0);
    const int merged = i / levels;
    for (int j = 0; j < levels; ++j) {
      const int start = j * merged, stop = j == levels - 1 ? i : start + merged;
      double mass = 0;
      int nonzero = 0;
      for (int k = start; k < stop; ++k) {
        mass += hist[k];
        nonzero += p[k] != 0;
      }
      if (nonzero == 0) continue;
      for (int k = start; k < stop; ++k)
        if (p[k] != 0) q[k] = mass / nonzero;
    }
    normalise_and_smooth(p);
    normalise_and_smooth(q);
    double kl = 0;
    for (int k = 0; k < i; ++k)
      if (p[k] > 0) kl += p[k] * std::log(p[k] / q[k]);
    if (kl < best_kl) {
      best_kl = kl;
      best_i = i;
    }
  }
  return (best_i + 0.5) * bin_width;
}

std::map<std::string, double> calibrate(Module& model, const DataLoader& loader, int batches,
                                        CalibrationMethod method, const CalibrationOptions& options) {
  LOWBIT_CHECK(batches >= 1, "calibrate: batches must be >= 1, got ", batches);
  LOWBIT_CHECK(options.bins >= 16, "calibrate: bins must be >= 16, got ", options.bins);
  struct Site {
    std::string name;
    Quantizer* q;
    double max = 0;
    std::vector<double> hist;
  };
  std::vector<Site> sites;
  std::vector<SawbQuantizer*> sawb;
  for (auto& [name, m] : model.named_modules()) {
    auto* q = dynamic_cast<Quantizer*>(m.get());
    if (!q) continue;
    if (q->target() == QuantTarget::activation) sites.push_back({name, q, 0.0, {}});
    if (auto* s = dynamic_cast<SawbQuantizer*>(q)) sawb.push_back(s);
  }
  LOWBIT_CHECK(!sites.empty(), "calibrate: the model has no activation quantizer (convert it first)");
  const int steps = static_cast<int>(std::min<int64_t>(batches, loader.steps()));
  LOWBIT_CHECK(steps >= 1, "calibrate: the loader has no batches");

  const bool was_training = model.is_training();
  const bool was_enabled = quantization_enabled(model);
  model.eval();
  set_quantization_enabled(model, false);  // calibrate the FP32 model: every quantizer passes through
  auto run = [&] {
    NoGradGuard no_grad;
    for (int s = 0; s < steps; ++s) model.forward(loader.batch(s).images);
  };
  try {
    // Pass 1: max |x|. Pass 2 (histogram methods): 2048-bin histogram of |x| on [0, max].
    for (auto& site : sites)
      site.q->set_observer([&site](const Tensor& x) {
        site.max = std::max<double>(site.max, quant_detail::max_abs(x.data(), x.numel()));
      });
    run();
    if (method == CalibrationMethod::percentile || method == CalibrationMethod::kl) {
      for (auto& site : sites) {
        site.hist.assign(static_cast<size_t>(options.bins), 0.0);
        const double width = std::max(site.max, 1e-12) / options.bins;
        site.q->set_observer([&site, width, bins = options.bins, skip = options.skip_zeros](const Tensor& x) {
          const float* xp = x.data();
          for (int64_t i = 0; i < x.numel(); ++i) {
            if (skip && xp[i] == 0.f) continue;
            const int b = std::min(bins - 1, static_cast<int>(std::fabs(xp[i]) / width));
            site.hist[static_cast<size_t>(b)] += 1.0;
          }
        });
      }
      run();
    }
  } catch (...) {
    for (auto& site : sites) site.q->set_observer(nullptr);
    set_quantization_enabled(model, was_enabled);
    model.train(was_training);
    throw;
  }
  std::map<std::string, double> clips;
  for (auto& site : sites) {
    site.q->set_observer(nullptr);
    const double width = std::max(site.max, 1e-12) / options.bins;
    double clip = site.max;
    switch (method) {
      case CalibrationMethod::max: break;
      case CalibrationMethod::fraction_of_max: clip = options.fraction * site.max; break;
      case CalibrationMethod::percentile: clip = percentile_threshold(site.hist, width, options.percentile); break;
      case CalibrationMethod::kl: {
        const bool is_signed = dynamic_cast<SignedInputQuantizer*>(site.q) != nullptr;
        const int levels = 1 << (is_signed ? site.q->bits() - 1 : site.q->bits());
        clip = kl_threshold(site.hist, width, std::min(levels, options.bins - 1));
        break;
      }
    }
    clip = std::max(clip, 1e-3);
    site.q->set_clip(static_cast<float>(clip));
    clips[site.name] = clip;
  }
  for (auto* s : sawb) {
    s->use_max = options.weights == WeightCalibration::max;
    s->alpha_w->data()[0] = 0.f;  // recomputed from the weights on the next forward
  }
  set_quantization_enabled(model, was_enabled);
  model.train(was_training);
  return clips;
}

}  // namespace lowbit
