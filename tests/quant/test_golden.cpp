// test_golden.cpp: every registered quantizer (quant/registry.h) against the golden vectors
// (tests/quant/data/quantizers.json, a copy of ../shared/golden/quantizers.json): forward values,
// dL/dx and every dL/dparam with L = sum(g * y), float32 within rtol 1e-5. The test iterates the
// registry: each method and target it registers must have golden cases (named METHOD, or
// METHOD_weight / METHOD_act when the method has both), or be listed in kWithoutGolden with the
// test that covers it instead. The quantizer is built by its registered factory and run through
// the Quantizer contract (forward, backward, its parameters and buffers by name), so this file
// names no method.
// As the golden file allows, an element may mismatch only where x lies within 1e-6 of a rounding
// tie or a clip boundary: the quantizer itself, evaluated at x - 1e-6 and x + 1e-6 for that
// element alone, then gives a different y or a different dL/dx. A parameter gradient may differ by
// the jump of that element's own contribution g_i * dy_i/dparam across the same interval.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/autograd.h"
#include "quant/registry.h"

using namespace lowbit;
using nlohmann::json;

namespace {

// Registered methods without golden vectors, and what tests them instead.
const std::map<std::string, std::string> kWithoutGolden = {
    {"input", "LSQ's grid with a statistics-driven step: codes() and the integer rule in test_quant.cpp"}};

json load_golden() {
  const char* path = std::getenv("LOWBIT_GOLDEN");
  REQUIRE_MESSAGE(path != nullptr, "LOWBIT_GOLDEN is not set (meson test sets it)");
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open ", path);
  return json::parse(in);
}

std::string golden_name(const QuantizerMethod& m, QuantTarget target) {
  if (!(m.make_weight && m.make_activation)) return m.name;
  return m.name + (target == QuantTarget::weight ? "_weight" : "_act");
}

Tensor to_tensor(const std::vector<double>& a, const Shape& shape) {
  std::vector<float> v(a.begin(), a.end());
  return Tensor::from_vector(shape, v);
}

Tensor& named(std::vector<std::pair<std::string, Tensor>>& list, const std::string& name) {
  for (auto& [n, t] : list)
    if (n == name) return t;
  FAIL("the quantizer has no parameter or buffer '", name, "'");
  throw;  // not reached
}

// One run of a fresh quantizer with the case's parameters: y, dL/dx and dL/dparam for L = sum(g*y).
struct Run {
  std::vector<float> y, dx;
  std::map<std::string, double> dparams;
  std::map<std::string, double> buffers;
};

Run run_case(const QuantizerMethod& m, QuantTarget target, const json& c, const std::vector<double>& xs,
             const std::vector<double>& gs) {
  const int bits = c["bits"];
  auto q = make_quantizer(m.name, target, bits);
  q->train();
  auto params = q->named_parameters();
  for (auto& [name, value] : c["params"].items()) named(params, name).data()[0] = value.get<float>();
  auto buffers = q->named_buffers();
  for (auto& [name, t] : buffers)
    if (name == "initialized") t.data()[0] = 1.f;  // the case's parameters, not a data init
  const int64_t n = static_cast<int64_t>(xs.size());
  Shape shape{n};
  if (c.contains("grad_scale_n") && target == QuantTarget::activation)
    shape = {n / c["grad_scale_n"].get<int64_t>(), c["grad_scale_n"].get<int64_t>()};  // features per sample
  Tensor x = to_tensor(xs, shape);
  x.set_requires_grad(true);
  Tensor y = q->forward(x);
  y.backward(to_tensor(gs, shape));
  Run r{y.to_vector(), x.grad().to_vector(), {}, {}};
  for (auto& [name, t] : params) r.dparams[name] = t.grad().defined() ? t.grad().item() : 0.0;
  for (auto& [name, t] : buffers) r.buffers[name] = t.data()[0];
  return r;
}

bool differs(double a, double b) { return std::fabs(a - b) > 1e-3 * std::max(std::fabs(a), std::fabs(b)) + 1e-9; }

int total_mismatches = 0;

void check_case(const QuantizerMethod& m, QuantTarget target, const json& c) {
  const std::vector<double> xs = c["x"], gs = c["g"], ey = c["y"], edx = c["dx"];
  const Run r = run_case(m, target, c, xs, gs);
  const json buffers = c.value("buffers", json::object());
  for (auto& [name, value] : buffers.items()) {
    INFO("buffer ", name, ": got ", r.buffers.at(name), " expected ", value.get<double>());
    CHECK(std::fabs(r.buffers.at(name) - value.get<double>()) <= 1e-5 * std::fabs(value.get<double>()));
  }
  std::map<std::string, double> allowance;
  int mismatches = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    // This element alone at x -+ 1e-6, its g alone: critical when y or dx changes across.
    std::vector<double> lo = xs, hi = xs, gi(gs.size(), 0.0);
    lo[i] -= 1e-6;
    hi[i] += 1e-6;
    gi[i] = gs[i];
    const Run a = run_case(m, target, c, lo, gi), b = run_case(m, target, c, hi, gi);
    const bool critical = a.y[i] != b.y[i] || differs(a.dx[i], b.dx[i]);
    if (critical)
      for (auto& [name, d] : a.dparams) allowance[name] += std::fabs(d - b.dparams.at(name));
    const bool ok_y = std::fabs(r.y[i] - ey[i]) <= 1e-5 * std::fabs(ey[i]) + 1e-6;
    const bool ok_dx = std::fabs(r.dx[i] - edx[i]) <= 1e-5 * std::fabs(edx[i]) + 1e-6;
    if (!ok_y || !ok_dx) {
      INFO(m.name, " ", c["bits"].get<int>(), "b element ", i, " x=", xs[i], ": y ", r.y[i], " vs ", ey[i], ", dx ",
           r.dx[i], " vs ", edx[i]);
      CHECK_MESSAGE(critical, "mismatch away from any tie / clip boundary");
      ++mismatches;
    }
  }
  total_mismatches += mismatches;
  std::set<std::string> expected_names;
  for (auto& [name, value] : c["dparams"].items()) {
    expected_names.insert(name);
    REQUIRE_MESSAGE(r.dparams.count(name), m.name, ": no parameter ", name);
    const double expected = value.get<double>(), got = r.dparams.at(name);
    INFO(m.name, " ", c["bits"].get<int>(), "b d", name, ": got ", got, " expected ", expected, " (allowance ",
         allowance[name], ")");
    CHECK(std::fabs(got - expected) <= 1e-5 * std::fabs(expected) + 1e-5 + allowance[name]);
  }
  // Every learned parameter of the quantizer has its golden gradient.
  for (auto& [name, d] : r.dparams) {
    INFO(m.name, ": parameter ", name, " has no golden gradient");
    CHECK(expected_names.count(name) == 1);
  }
}

}  // namespace

TEST_CASE("golden vectors: every registered method, target and bit width") {
  const json golden = load_golden();
  REQUIRE(golden["rounding"] == "half to even");
  REQUIRE(golden["cases"].size() >= 24);
  std::set<std::string> used;
  for (const QuantizerMethod& m : quantizer_methods())
    for (QuantTarget target : {QuantTarget::weight, QuantTarget::activation}) {
      if (!(target == QuantTarget::weight ? m.make_weight : m.make_activation)) continue;
      const std::string name = golden_name(m, target);
      int cases = 0;
      for (const auto& c : golden["cases"]) {
        if (c["method"] != name) continue;
        INFO("case ", name, " ", c["bits"].get<int>(), " bits");
        check_case(m, target, c);
        ++cases;
      }
      used.insert(name);
      INFO("registered method ", name, " has no golden cases; add them or list it in kWithoutGolden");
      CHECK((cases >= 3 || kWithoutGolden.count(m.name) == 1));
    }
  // And no golden case is left without a registered quantizer.
  for (const auto& c : golden["cases"]) {
    INFO("golden case ", c["method"].get<std::string>(), " matches no registered method");
    CHECK(used.count(c["method"].get<std::string>()) == 1);
  }
  MESSAGE(total_mismatches, " element mismatches, all at ties / clip boundaries");
}
