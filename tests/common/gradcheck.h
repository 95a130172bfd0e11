// gradcheck.h: finite-difference gradient checks shared by the test suites.
// check_gradients(f, inputs) compares the autograd gradient of L = sum(f(inputs) * r) (r a
// fixed random weighting, so every output element matters) with central differences
// (L(x+h) - L(x-h)) / 2h evaluated with the loss accumulated in double precision. Inputs are
// chosen by the caller away from kinks. Large inputs are checked on a spread subset.
#pragma once
#include <doctest/doctest.h>

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
  float step = 1e-3f;
  double atol = 2e-3;
  double rtol = 2e-2;
  int64_t max_points = 64;  // per input
};

inline void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                            std::vector<Tensor> inputs, const GradcheckOptions& opt = {},
                            uint64_t seed = 7) {
  for (auto& t : inputs) {
    t.set_requires_grad(true);
    t.set_grad(Tensor());  // checks may share inputs: start from no gradient
  }
  Tensor y = f(inputs);
  Generator gen(seed);
  const Tensor r = Tensor::randn(y.shape(), gen);
  y.backward(r);
  for (size_t which = 0; which < inputs.size(); ++which) {
    Tensor x = inputs[which];
    REQUIRE_MESSAGE(x.grad().defined(), "input ", which, " got no gradient");
    const Tensor analytic = x.grad().clone();
    const int64_t n = x.numel();
    const int64_t stride = std::max<int64_t>(1, n / opt.max_points);
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
      const double numeric = (lp - lm) / (2.0 * static_cast<double>(opt.step));
      const double a = analytic.data()[i];
      INFO("input ", which, " element ", i, ": analytic ", a, " numeric ", numeric);
      CHECK(std::abs(a - numeric) <= opt.atol + opt.rtol * std::abs(numeric));
    }
  }
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
