// gradcheck.h: finite-difference gradient checks shared by the test suites.
// gradient_error(f, inputs) compares the autograd gradient of L = sum(f(inputs) * r) (r a fixed
// random weighting, so every output element matters) with central differences
// (L(x+h) - L(x-h)) / 2h, the loss accumulated in double precision, and returns the worst
// element's error in units of its tolerance:
//   max_i |analytic_i - numeric_i| / (floor + atol * max_j |numeric_j| + rtol * |numeric_i|)
// (max_j over the same input), so <= 1 passes. The tolerances are a fraction of the gradient's
// own scale: atol + rtol = 0.5 %, so a gradient that is 1 % off fails (tested in test_ops.cpp).
// The default step h = 1e-2 suits float32 forwards on inputs of order 1: rounding noise
// ~ 6e-8 |y| / h stays ~1e-5 relative, truncation ~ h^2 |f'''| / 6 likewise; inputs are chosen by
// the caller at least 2h away from kinks. Large inputs are checked on a spread subset.
// check_gradients(...) CHECKs gradient_error(...) <= 1 and reports the worst element.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/random.h"
#include "core/tensor.h"

namespace lowbit::testing {

inline double weighted_sum(const Tensor& y, const Tensor& r) {
  double s = 0;
  for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(y.data()[i]) * r.data()[i];
  return s;
}

struct GradcheckOptions {
  float step = 1e-2f;
  double atol = 2.5e-3;  // relative to the input's largest numeric gradient magnitude
  double rtol = 2.5e-3;  // relative to the element's numeric gradient
  int64_t max_points = 64;  // per input
  double floor = 1e-6;      // absolute, for gradients that are all (near) zero
};

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradcheckReport {
  double error = 0;  // worst element, in units of its tolerance (<= 1 passes)
  std::string worst;  // which element, with both values
};

// `scale_analytic` multiplies the autograd gradient before the comparison: the tests use it to
// prove that a gradient 1 % off fails.
inline GradcheckReport gradient_report(const GradFn& f, std::vector<Tensor> inputs, const GradcheckOptions& opt = {},
                                       uint64_t seed = 7, double scale_analytic = 1.0) {
  for (auto& t : inputs) {
    t.set_requires_grad(true);
    t.set_grad(Tensor());  // checks may share inputs: start from no gradient
  }
  Tensor y = f(inputs);
  Generator gen(seed);
  const Tensor r = Tensor::randn(y.shape(), gen);
  y.backward(r);
  GradcheckReport report;
  for (size_t which = 0; which < inputs.size(); ++which) {
    Tensor x = inputs[which];
    REQUIRE_MESSAGE(x.grad().defined(), "input ", which, " got no gradient");
    const Tensor analytic = x.grad().clone();
    const int64_t n = x.numel();
    const int64_t stride = std::max<int64_t>(1, n / opt.max_points);
    std::vector<int64_t> points;
    std::vector<double> numeric;
    for (int64_t i = 0; i < n; i += stride) {
      const float orig = x.data()[i];
      double lp, lm;
      {
        NoGradGuard ng;
        x.data()[i] = orig + opt.step;
        lp = weighted_sum(f(inputs), r);
        x.data()[i] = orig - opt.step;
        lm = weighted_sum(f(inputs), r);
        x.data()[i] = orig;
      }
      // The step actually taken: orig +- step rounded to float.
      const double h2 = static_cast<double>(orig + opt.step) - static_cast<double>(orig - opt.step);
      points.push_back(i);
      numeric.push_back((lp - lm) / h2);
    }
    double scale = 0;
    for (double v : numeric) scale = std::max(scale, std::abs(v));
    for (size_t p = 0; p < points.size(); ++p) {
      const double a = scale_analytic * analytic.data()[points[p]];
      const double tol = opt.floor + opt.atol * scale + opt.rtol * std::abs(numeric[p]);
      const double e = std::abs(a - numeric[p]) / tol;
      if (e > report.error) {
        report.error = e;
        report.worst = "input " + std::to_string(which) + " element " + std::to_string(points[p]) + ": analytic " +
                       std::to_string(a) + " numeric " + std::to_string(numeric[p]) + " tolerance " + std::to_string(tol);
      }
    }
  }
  return report;
}

inline double gradient_error(const GradFn& f, std::vector<Tensor> inputs, const GradcheckOptions& opt = {},
                             uint64_t seed = 7, double scale_analytic = 1.0) {
  return gradient_report(f, std::move(inputs), opt, seed, scale_analytic).error;
}

inline void check_gradients(const GradFn& f, std::vector<Tensor> inputs, const GradcheckOptions& opt = {},
                            uint64_t seed = 7) {
  const GradcheckReport r = gradient_report(f, std::move(inputs), opt, seed);
  INFO("worst: ", r.worst, " (error ", r.error, " tolerances)");
  CHECK(r.error <= 1.0);
}

// Values in [lo, hi] kept at least `gap` away from each of the given kinks.
inline Tensor random_away_from(const Shape& shape, Generator& gen, float lo, float hi,
                               std::vector<float> kinks = {}, float gap = 0.05f) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v;
    bool ok;
    do {
      v = lo + (hi - lo) * gen.uniform();
      ok = true;
      for (float k : kinks) ok = ok && std::abs(v - k) >= gap;
    } while (!ok);
    t.data()[i] = v;
  }
  return t;
}

}  // namespace lowbit::testing
