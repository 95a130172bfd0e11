// test_golden.cpp: every quantizer op against the golden vectors (tests/quant/data/quantizers.json,
// a copy of ../shared/golden/quantizers.json): forward values, dL/dx and every dL/dparam with
// L = sum(g * y), float32 within rtol 1e-5. As the file allows, an element may mismatch only where
// x lies within 1e-6 of a rounding tie or a clip boundary: we detect that by evaluating, in
// double, the method's pre-rounding quantity and its branch at x - 1e-6 and x + 1e-6; a parameter
// gradient may then differ by at most that element's |g| times its largest possible jump.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/autograd.h"
#include "quant/dorefa.h"
#include "quant/lsq.h"
#include "quant/pact.h"
#include "quant/qil.h"
#include "quant/sawb.h"

using namespace lowbit;
using nlohmann::json;

namespace {

json load_golden() {
  const char* path = std::getenv("LOWBIT_GOLDEN");
  REQUIRE_MESSAGE(path != nullptr, "LOWBIT_GOLDEN is not set (meson test sets it)");
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open ", path);
  return json::parse(in);
}

Tensor to_tensor(const json& a, const Shape& shape) {
  std::vector<float> v;
  for (const auto& e : a) v.push_back(static_cast<float>(e.get<double>()));
  return Tensor::from_vector(shape, v);
}

Tensor param(float v) {
  Tensor t = Tensor::full({1}, v);
  t.set_requires_grad(true);
  return t;
}

// (pre-rounding value, branch id) of one element in double: a tie is a half-integer of the first,
// a boundary a change of the second.
using Critical = std::function<std::pair<double, int>(double x)>;

bool near_critical(const Critical& f, double x) {
  const double h = 1e-6;
  auto [a, ra] = f(x - h);
  auto [b, rb] = f(x + h);
  return ra != rb || std::floor(a + 0.5) != std::floor(b + 0.5);
}

int branch3(double v, double lo, double hi) { return v < lo ? 0 : (v < hi ? 1 : 2); }

struct CaseResult {
  Tensor y, dx;
  std::map<std::string, Tensor> dparams;
  Critical critical;
  double max_jump = 0;  // largest per-element jump of a parameter-gradient term at a critical point
};

int total_mismatches = 0;

void check_case(const json& c) {
  const std::string method = c["method"];
  const int bits = c["bits"];
  const int64_t n = static_cast<int64_t>(c["x"].size());
  Shape shape{n};
  if (c.contains("grad_scale_n") && method == "lsq_act") shape = {n / c["grad_scale_n"].get<int64_t>(), c["grad_scale_n"].get<int64_t>()};
  Tensor x = to_tensor(c["x"], shape);
  x.set_requires_grad(true);
  const Tensor g = to_tensor(c["g"], shape);
  const json& p = c["params"];
  const double levels = (1 << bits) - 1;
  CaseResult r;
  std::map<std::string, Tensor> params;
  if (method == "pact") {
    const double a = p["alpha"];
    params["alpha"] = param(static_cast<float>(a));
    r.y = pact_quantize(x, params["alpha"], bits);
    r.critical = [a, levels](double v) { return std::make_pair(std::clamp(v, 0.0, a) * levels / a, branch3(v, 0, a)); };
    r.max_jump = 1;
  } else if (method == "dorefa_act") {
    r.y = dorefa_act_quantize(x, bits);
    r.critical = [levels](double v) {
      return std::make_pair(std::clamp(v, 0.0, 1.0) * levels, v < 0 ? 0 : (v <= 1 ? 1 : 2));
    };
  } else if (method == "dorefa_weight") {
    r.y = dorefa_weight_quantize(x, bits);
    double m = 0;
    for (auto& e : c["x"]) m = std::max(m, std::fabs(std::tanh(e.get<double>())));
    r.critical = [m, levels](double v) { return std::make_pair((std::tanh(v) / (2 * m) + 0.5) * levels, 0); };
  } else if (method == "sawb") {
    const float alpha = sawb_alpha(x, bits);
    const double golden_alpha = c["buffers"]["alpha_w"];
    INFO("sawb alpha_w: got ", alpha, " expected ", golden_alpha);
    CHECK(std::fabs(alpha - golden_alpha) <= 1e-5 * std::fabs(golden_alpha));
    r.y = sawb_quantize(x, alpha, bits);
    r.critical = [golden_alpha, levels](double v) {
      const double u = std::clamp(v / golden_alpha, -1.0, 1.0);
      return std::make_pair(levels * (u + 1) / 2, std::fabs(v) <= golden_alpha ? 1 : 0);
    };
  } else if (method == "qil_weight") {
    const double cc = p["c"], dd = p["d"], gm = p["gamma"];
    params["c"] = param(static_cast<float>(cc));
    params["d"] = param(static_cast<float>(dd));
    params["gamma"] = param(static_cast<float>(gm));
    r.y = qil_weight_quantize(x, params["c"], params["d"], params["gamma"], bits);
    const double q = (1 << (bits - 1)) - 1;
    r.critical = [cc, dd, gm, q](double v) {
      const double u = (std::fabs(v) - cc + dd) / (2 * dd);
      const double w = u <= 0 ? 0 : (u >= 1 ? 1 : std::pow(u, gm));
      return std::make_pair(w * q, (u <= 0 ? 0 : (u >= 1 ? 2 : 1)) + (v < 0 ? 10 : 0));
    };
    r.max_jump = gm / (2 * dd) * (1 + cc / dd) + 1;
  } else if (method == "qil_act") {
    const double cc = p["c"], dd = p["d"];
    params["c"] = param(static_cast<float>(cc));
    params["d"] = param(static_cast<float>(dd));
    r.y = qil_act_quantize(x, params["c"], params["d"], bits);
    r.critical = [cc, dd, levels](double v) {
      const double u = (v - cc + dd) / (2 * dd);
      return std::make_pair(std::clamp(u, 0.0, 1.0) * levels, u <= 0 ? 0 : (u >= 1 ? 2 : 1));
    };
    r.max_jump = (1 + std::fabs(cc) + 3) / (2 * dd * dd);
  } else if (method == "lsq_weight" || method == "lsq_act") {
    const bool w = method == "lsq_weight";
    const int qn = w ? 1 << (bits - 1) : 0, qp = w ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    const double s = p["s"], gn = c["grad_scale_n"];
    params["s"] = param(static_cast<float>(s));
    r.y = lsq_quantize(x, params["s"], qn, qp, gn);
    r.critical = [s, qn, qp](double v) {
      return std::make_pair(std::clamp(v / s, -double(qn), double(qp)), v / s <= -qn ? 0 : (v / s < qp ? 1 : 2));
    };
    r.max_jump = (std::max(qn, qp) + 1) / std::sqrt(gn * qp);
  } else {
    FAIL("unknown golden method ", method);
  }
  r.y.backward(g);

  const auto gy = c["y"], gdx = c["dx"];
  const float* y = r.y.data();
  const float* dx = x.grad().data();
  double allowance = 0;
  int mismatches = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double xi = c["x"][i], ey = gy[i], edx = gdx[i];
    const bool ok_y = std::fabs(y[i] - ey) <= 1e-5 * std::fabs(ey) + 1e-6;
    const bool ok_dx = std::fabs(dx[i] - edx) <= 1e-5 * std::fabs(edx) + 1e-6;
    const bool critical = near_critical(r.critical, xi);
    if (critical) allowance += std::fabs(c["g"][i].get<double>()) * r.max_jump;
    if (!ok_y || !ok_dx) {
      INFO(method, " ", bits, "b element ", i, " x=", xi, ": y ", y[i], " vs ", ey, ", dx ", dx[i], " vs ", edx);
      CHECK_MESSAGE(critical, "mismatch away from any tie / clip boundary");
      ++mismatches;
    }
  }
  total_mismatches += mismatches;
  for (auto& [name, t] : params) {
    const double expected = c["dparams"][name];
    REQUIRE_MESSAGE(t.grad().defined(), method, ": no gradient for ", name);
    const double got = t.grad().item();
    INFO(method, " ", bits, "b d", name, ": got ", got, " expected ", expected, " (allowance ", allowance, ")");
    CHECK(std::fabs(got - expected) <= 1e-5 * std::fabs(expected) + 1e-5 + allowance);
  }
  CHECK(params.size() == c["dparams"].size());
}

}  // namespace

TEST_CASE("golden vectors: every method and bit width") {
  const json golden = load_golden();
  REQUIRE(golden["rounding"] == "half to even");
  REQUIRE(golden["cases"].size() >= 24);
  for (const auto& c : golden["cases"]) {
    INFO("case ", c["method"].get<std::string>(), " ", c["bits"].get<int>(), " bits");
    check_case(c);
  }
  MESSAGE(total_mismatches, " element mismatches, all at ties / clip boundaries");
}
