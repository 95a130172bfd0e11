// test_optim.cpp: optim/ against hand-computed trajectories (arithmetic in the comments, the
// PyTorch update rules written in optim/*.h), plus groups, clamps, schedules, clipping, skipped
// parameters and the bit-identical checkpoint round trip.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/lr_schedule.h"
#include "optim/make_optimizer.h"
#include "optim/optimizer.h"
#include "optim/sgd.h"

using namespace lowbit;

namespace {

Tensor param(const std::vector<float>& values) {
  Tensor p = Tensor::from_vector({static_cast<int64_t>(values.size())}, values);
  p.set_requires_grad(true);
  return p;
}

void set_grad(Tensor& p, const std::vector<float>& g) {
  p.set_grad(Tensor::from_vector(p.shape(), g));
}

ParamGroup group(std::vector<Tensor> params, double lr, double wd = 0.0) {
  ParamGroup g;
  g.params = std::move(params);
  g.lr = lr;
  g.weight_decay = wd;
  return g;
}

// Float32 arithmetic against double hand values: a few ulps of the magnitudes involved.
void check_close(const Tensor& t, const std::vector<double>& expected, double tol = 2e-6) {
  REQUIRE(t.numel() == static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("element ", i, ": got ", t.data()[i], ", expected ", expected[i]);
    CHECK(std::fabs(static_cast<double>(t.data()[i]) - expected[i]) <= tol * (1 + std::fabs(expected[i])));
  }
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * static_cast<size_t>(a.numel())) == 0;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no lowbit::Error thrown)";
}

}  // namespace

// ---------------------------------------------------------------- SGD

TEST_CASE("sgd plain: p -= lr * grad") {
  Tensor p = param({1.f, -2.f});
  SGD opt({group({p}, 0.1)}, {0.0, 0.0, false});
  set_grad(p, {0.5f, 1.f});
  opt.step();
  // 1 - 0.1*0.5 = 0.95; -2 - 0.1*1 = -2.1
  check_close(p, {0.95, -2.1});
  opt.step();  // same gradient again: 0.95 - 0.05 = 0.9; -2.1 - 0.1 = -2.2
  check_close(p, {0.9, -2.2});
  CHECK(opt.step_count() == 2);
}

TEST_CASE("sgd weight decay adds wd*p to the gradient") {
  Tensor p = param({1.f});
  SGD opt({group({p}, 0.1, 0.1)});
  CHECK(opt.options().momentum == 0.0);
  set_grad(p, {0.5f});
  opt.step();
  // g = 0.5 + 0.1*1 = 0.6; p = 1 - 0.06 = 0.94
  check_close(p, {0.94});
  opt.step();
  // g = 0.5 + 0.1*0.94 = 0.594; p = 0.94 - 0.0594 = 0.8806
  check_close(p, {0.8806});
}

TEST_CASE("sgd momentum: first step buf = g, then buf = m*buf + g") {
  Tensor p = param({1.f});
  SGD opt({group({p}, 0.1)}, {0.9, 0.0, false});
  set_grad(p, {1.f});
  opt.step();  // buf = 1;                 p = 1 - 0.1*1 = 0.9
  check_close(p, {0.9});
  opt.step();  // buf = 0.9*1 + 1 = 1.9;   p = 0.9 - 0.19 = 0.71
  check_close(p, {0.71});
  opt.step();  // buf = 0.9*1.9 + 1 = 2.71; p = 0.71 - 0.271 = 0.439
  check_close(p, {0.439});
}

TEST_CASE("sgd dampening is not applied on the first step") {
  Tensor p = param({1.f});
  SGD opt({group({p}, 0.1)}, {0.9, 0.5, false});
  set_grad(p, {1.f});
  opt.step();  // buf = g = 1 (no dampening);      p = 0.9
  check_close(p, {0.9});
  opt.step();  // buf = 0.9*1 + 0.5*1 = 1.4;       p = 0.9 - 0.14 = 0.76
  check_close(p, {0.76});
  opt.step();  // buf = 0.9*1.4 + 0.5 = 1.76;      p = 0.76 - 0.176 = 0.584
  check_close(p, {0.584});
}

TEST_CASE("sgd nesterov: g = g + m*buf") {
  Tensor p = param({1.f});
  SGD opt({group({p}, 0.1)}, {0.9, 0.0, true});
  set_grad(p, {1.f});
  opt.step();  // buf = 1;    g = 1 + 0.9*1 = 1.9;     p = 1 - 0.19 = 0.81
  check_close(p, {0.81});
  opt.step();  // buf = 1.9;  g = 1 + 0.9*1.9 = 2.71;  p = 0.81 - 0.271 = 0.539
  check_close(p, {0.539});
  opt.step();  // buf = 2.71; g = 1 + 0.9*2.71 = 3.439; p = 0.539 - 0.3439 = 0.1951
  check_close(p, {0.1951});
}

TEST_CASE("sgd momentum with weight decay") {
  Tensor p = param({1.f});
  SGD opt({group({p}, 0.1, 0.5)}, {0.9, 0.0, false});
  set_grad(p, {0.f});
  opt.step();  // g = 0 + 0.5*1 = 0.5; buf = 0.5; p = 1 - 0.05 = 0.95
  check_close(p, {0.95});
  opt.step();  // g = 0.5*0.95 = 0.475; buf = 0.45 + 0.475 = 0.925; p = 0.95 - 0.0925 = 0.8575
  check_close(p, {0.8575});
}

TEST_CASE("sgd options are validated") {
  Tensor p = param({1.f});
  CHECK(error_of([&] { SGD({group({p}, 0.1)}, {0.0, 0.0, true}); }).find("nesterov") !=
        std::string::npos);
  CHECK(error_of([&] { SGD({group({p}, 0.1)}, {0.9, 0.1, true}); }).find("dampening") !=
        std::string::npos);
  CHECK(error_of([&] { SGD({group({p}, -0.1)}); }).find("lr") != std::string::npos);
  CHECK(error_of([&] { SGD({group({p}, 0.1, -1.0)}); }).find("weight_decay") != std::string::npos);
  CHECK(error_of([&] { SGD({group({p}, 0.1), group({p}, 0.1)}); }).find("more than once") !=
        std::string::npos);
  CHECK(error_of([&] { SGD({group({Tensor()}, 0.1)}); }).find("undefined") != std::string::npos);
}

// ---------------------------------------------------------------- Adam / AdamW

TEST_CASE("adam trajectory (beta1 0.9, beta2 0.999, eps 1e-8, lr 0.1)") {
  Tensor p = param({1.f});
  Adam opt({group({p}, 0.1)});
  CHECK(opt.name() == "adam");
  set_grad(p, {2.f});
  opt.step();
  // t=1: m = 0.1*2 = 0.2; v = 0.001*4 = 0.004; step_size = 0.1/(1-0.9) = 1;
  // sqrt(v)/sqrt(1-0.999) = 2; p = 1 - 1*0.2/(2 + 1e-8) = 0.9000000005
  check_close(p, {0.9000000005});
  set_grad(p, {-1.f});
  opt.step();
  // t=2: m = 0.9*0.2 + 0.1*(-1) = 0.08; v = 0.999*0.004 + 0.001*1 = 0.004996;
  // step_size = 0.1/(1-0.81) = 0.526315789; sqrt(v)/sqrt(1-0.998001) = sqrt(0.004996/0.001999)
  // = 1.580901523; p = 0.9000000005 - 0.526315789*0.08/1.580901523 = 0.9000000005 - 0.026633704
  // = 0.873366297
  check_close(p, {0.8733662967024315});
  set_grad(p, {0.5f});
  opt.step();
  // t=3: m = 0.9*0.08 + 0.1*0.5 = 0.122; v = 0.999*0.004996 + 0.001*0.25 = 0.005241004;
  // step_size = 0.1/(1-0.729) = 0.369003690; sqrt(0.005241004/(1-0.997002999)) = 1.322402926;
  // p = 0.873366297 - 0.369003690*0.122/1.322402926 = 0.873366297 - 0.034042915 = 0.839323382
  check_close(p, {0.8393233821389426});
}

TEST_CASE("adam weight decay is L2 (added to the gradient)") {
  Tensor p = param({1.f});
  Adam opt({group({p}, 0.1, 0.1)});
  set_grad(p, {2.f});
  opt.step();
  // g = 2 + 0.1*1 = 2.1; first Adam step moves by lr*g/(|g| + eps/...) ~ 0.1: p = 0.9000000004762
  check_close(p, {0.9000000004761904});
  set_grad(p, {-1.f});
  opt.step();
  // g = -1 + 0.1*0.9 = -0.91; m = 0.9*0.21 + 0.1*(-0.91) = 0.098;
  // v = 0.999*0.00441 + 0.001*0.8281 = 0.00523369; step_size = 0.1/0.19 = 0.526315789;
  // p = 0.9 - 0.526315789*0.098/sqrt(0.00523369/0.001999) = 0.9 - 0.031876811 = 0.868123189
  check_close(p, {0.8681231891743804});
}

TEST_CASE("adamw decouples the decay: p *= 1 - lr*wd, then the plain Adam step") {
  Tensor p = param({1.f});
  AdamW opt({group({p}, 0.1, 0.1)});
  CHECK(opt.name() == "adamw");
  set_grad(p, {2.f});
  opt.step();
  // p = 1*(1 - 0.1*0.1) = 0.99; Adam step (same m, v as plain Adam): 0.99 - 0.0999999995 = 0.8900000005
  check_close(p, {0.8900000005});
  set_grad(p, {-1.f});
  opt.step();
  // p = 0.8900000005*0.99 = 0.8811000005; minus the plain Adam t=2 update 0.026633704 = 0.854466297
  check_close(p, {0.8544662966974315});
  set_grad(p, {0.5f});
  opt.step();
  // p = 0.854466297*0.99 = 0.845921634; minus the plain Adam t=3 update 0.034042915 = 0.811878719
  check_close(p, {0.8118787191669683});
}

TEST_CASE("adam options are validated") {
  Tensor p = param({1.f});
  CHECK(error_of([&] { Adam({group({p}, 0.1)}, {1.0, 0.999, 1e-8}); }).find("beta1") != std::string::npos);
  CHECK(error_of([&] { AdamW({group({p}, 0.1)}, {0.9, -0.1, 1e-8}); }).find("beta2") != std::string::npos);
  CHECK(error_of([&] { Adam({group({p}, 0.1)}, {0.9, 0.999, -1.0}); }).find("eps") != std::string::npos);
}

// ---------------------------------------------------------------- groups, multiplier, clamps

TEST_CASE("groups have their own lr and weight decay; the multiplier scales every lr") {
  Tensor a = param({1.f});
  Tensor b = param({2.f});
  SGD opt({group({a}, 0.1), group({b}, 0.01, 0.5)});
  opt.set_lr_multiplier(0.5);
  CHECK(opt.lr(0) == doctest::Approx(0.05));
  CHECK(opt.lr(1) == doctest::Approx(0.005));
  set_grad(a, {1.f});
  set_grad(b, {1.f});
  opt.step();
  // a: lr 0.1*0.5 = 0.05, g = 1 -> 1 - 0.05 = 0.95
  // b: lr 0.01*0.5 = 0.005, g = 1 + 0.5*2 = 2 -> 2 - 0.01 = 1.99
  check_close(a, {0.95});
  check_close(b, {1.99});
  CHECK(error_of([&] { opt.set_lr_multiplier(-1); }).find("multiplier") != std::string::npos);
  CHECK(error_of([&] { (void)opt.lr(2); }).find("group 2") != std::string::npos);
}

TEST_CASE("grad_scale multiplies the raw gradient, not the decay") {
  Tensor p = param({1.f});
  ParamGroup g = group({p}, 0.1, 0.2);
  g.grad_scale = 0.5;
  SGD opt({g});
  set_grad(p, {1.f});
  opt.step();
  // g = 0.5*1 + 0.2*1 = 0.7; p = 1 - 0.07 = 0.93; the stored gradient is untouched
  check_close(p, {0.93});
  CHECK(p.grad().item() == 1.f);
}

TEST_CASE("min_value / max_value clamp after the step; post_step runs every step") {
  Tensor alpha = param({0.05f, 3.f});
  Tensor w = param({0.05f});
  Tensor frozen = param({-5.f});  // no gradient: neither updated nor clamped
  ParamGroup q = group({alpha, frozen}, 0.1);
  q.min_value = 1e-3;
  q.max_value = 2.5;
  int hook_calls = 0;
  q.post_step = [&](ParamGroup& g) {
    ++hook_calls;
    CHECK(g.params.size() == 2);
  };
  SGD opt({group({w}, 0.1), q});
  set_grad(alpha, {1.f, -1.f});
  set_grad(w, {1.f});
  opt.step();
  // alpha: 0.05 - 0.1 = -0.05 -> clamped to 1e-3; 3 + 0.1 = 3.1 -> clamped to 2.5
  CHECK(alpha.data()[0] == 1e-3f);
  CHECK(alpha.data()[1] == 2.5f);
  check_close(w, {-0.05});  // unclamped group goes negative
  CHECK(frozen.item() == -5.f);
  CHECK(hook_calls == 1);
  opt.zero_grad(/*set_to_none=*/true);
  opt.step();  // nothing has a gradient, the hook still runs
  CHECK(hook_calls == 2);
  CHECK(alpha.data()[0] == 1e-3f);
  ParamGroup bad = group({param({1.f})}, 0.1);
  bad.min_value = 1;
  bad.max_value = 0;
  CHECK(error_of([&] { opt.add_param_group(bad); }).find("min_value") != std::string::npos);
}

TEST_CASE("undefined gradients are skipped, and Adam's step count is per parameter") {
  Tensor a = param({1.f});
  Tensor b = param({1.f});
  Adam opt({group({a, b}, 0.1)});
  set_grad(a, {2.f});
  opt.step();  // b has no gradient: untouched, no state
  check_close(a, {0.9000000005});
  CHECK(b.item() == 1.f);
  StateDict sd = opt.state_dict();
  CHECK(sd.tensors.count("group.0.param.0.exp_avg") == 1);
  CHECK(sd.tensors.count("group.0.param.1.exp_avg") == 0);
  CHECK(sd.scalars.count("group.0.param.1.step") == 0);
  set_grad(a, {-1.f});
  set_grad(b, {2.f});
  opt.step();
  // a is at its t=2; b at its own t=1, so its first move is the bias-corrected ~lr: 1 -> 0.9
  check_close(a, {0.8733662967024315});
  check_close(b, {0.9000000005});
  sd = opt.state_dict();
  CHECK(sd.scalars.at("group.0.param.0.step") == 2);
  CHECK(sd.scalars.at("group.0.param.1.step") == 1);
  CHECK(sd.scalars.at("step") == 2);
}

TEST_CASE("zero_grad zeroes (or drops) every gradient") {
  Tensor a = param({1.f, 2.f});
  Tensor b = param({3.f});
  SGD opt({group({a}, 0.1), group({b}, 0.1)});
  set_grad(a, {1.f, 2.f});
  set_grad(b, {3.f});
  opt.zero_grad();
  REQUIRE(a.grad().defined());
  CHECK(a.grad().to_vector() == std::vector<float>{0.f, 0.f});
  CHECK(b.grad().item() == 0.f);
  opt.zero_grad(true);
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  CHECK(opt.parameters().size() == 2);
}

TEST_CASE("make_optimizer by name") {
  Tensor p = param({1.f});
  CHECK(make_optimizer("sgd", {group({p}, 0.1)})->name() == "sgd");
  CHECK(make_optimizer("adam", {group({p}, 0.1)})->name() == "adam");
  CHECK(make_optimizer("adamw", {group({p}, 0.1)})->name() == "adamw");
  auto sgd = make_optimizer("sgd", {group({p}, 0.1)});
  CHECK(dynamic_cast<SGD&>(*sgd).options().momentum == 0.9);
  CHECK(error_of([&] { make_optimizer("rmsprop", {group({p}, 0.1)}); }).find("'rmsprop'") !=
        std::string::npos);
}

// ---------------------------------------------------------------- schedules

TEST_CASE("schedule none and step") {
  LrSchedule none;
  CHECK(none.multiplier(0, 0, 10) == 1.0);
  CHECK(none.multiplier(500, 9, 10) == 1.0);
  LrSchedule s = LrSchedule::step(30, 0.1);
  CHECK(s.multiplier(0, 0, 100) == 1.0);
  CHECK(s.multiplier(29, 99, 100) == 1.0);
  CHECK(s.multiplier(30, 0, 100) == doctest::Approx(0.1));
  CHECK(s.multiplier(60, 5, 100) == doctest::Approx(0.01));
  CHECK(s.multiplier(89, 5, 100) == doctest::Approx(0.01));
}

TEST_CASE("schedule multistep (PACT recipe: /10 at 60 and 120)") {
  LrSchedule s = LrSchedule::multistep({60, 120}, 0.1);
  CHECK(s.multiplier(59, 390, 391) == 1.0);
  CHECK(s.multiplier(60, 0, 391) == doctest::Approx(0.1));
  CHECK(s.multiplier(119, 0, 391) == doctest::Approx(0.1));
  CHECK(s.multiplier(120, 0, 391) == doctest::Approx(0.01));
  CHECK(s.multiplier(199, 0, 391) == doctest::Approx(0.01));
  // Milestones need not be sorted; a duplicate counts twice (as PyTorch's Counter does).
  LrSchedule d = LrSchedule::multistep({5, 2, 5}, 0.5);
  CHECK(d.multiplier(1, 0, 1) == 1.0);
  CHECK(d.multiplier(2, 0, 1) == 0.5);
  CHECK(d.multiplier(5, 0, 1) == 0.125);
}

TEST_CASE("schedule cosine: endpoints and per-step smoothness") {
  LrSchedule c = LrSchedule::cosine(10);
  CHECK(c.multiplier(0, 0, 100) == 1.0);
  CHECK(c.multiplier(5, 0, 100) == doctest::Approx(0.5));  // cos(pi/2) = 0
  // t = 2 + 50/100 = 2.5 -> s = 0.25: 0.5*(1 + cos(pi/4)) = 0.8535533905932737
  CHECK(c.multiplier(2, 50, 100) == doctest::Approx(0.8535533905932737).epsilon(1e-12));
  CHECK(c.multiplier(10, 0, 100) == 0.0);  // cos(pi) = -1 exactly
  CHECK(c.multiplier(12, 3, 100) == 0.0);  // past the end: stays at the floor
  // last step of the run is just above 0, strictly decreasing step to step
  const double last = c.multiplier(9, 99, 100);
  CHECK(last > 0.0);
  CHECK(last < 1e-4);
  CHECK(c.multiplier(3, 1, 100) < c.multiplier(3, 0, 100));
  LrSchedule f = LrSchedule::cosine(10, 0.1);
  CHECK(f.multiplier(0, 0, 7) == 1.0);
  CHECK(f.multiplier(5, 0, 7) == doctest::Approx(0.55));  // 0.1 + 0.9*0.5
  CHECK(f.multiplier(10, 0, 7) == doctest::Approx(0.1));
}

TEST_CASE("schedule linear warmup, per step, then the base schedule") {
  // cosine over 12 epochs with 2 warmup epochs at 4 steps/epoch: 8 warmup steps
  LrSchedule c = LrSchedule::cosine(12, 0.0, 2.0);
  CHECK(c.multiplier(0, 0, 4) == 0.125);  // (0+1)/8, cosine part still 1
  CHECK(c.multiplier(0, 3, 4) == 0.5);    // (3+1)/8
  CHECK(c.multiplier(1, 3, 4) == 1.0);    // (7+1)/8: the last warmup step reaches 1
  CHECK(c.multiplier(2, 0, 4) == 1.0);    // cosine starts at the end of warmup: s = 0
  CHECK(c.multiplier(7, 0, 4) == doctest::Approx(0.5));  // s = (7-2)/(12-2) = 0.5
  CHECK(c.multiplier(12, 0, 4) == 0.0);
  LrSchedule s = LrSchedule::step(30, 0.1, 1.0);
  CHECK(s.multiplier(0, 0, 10) == doctest::Approx(0.1));
  CHECK(s.multiplier(0, 4, 10) == doctest::Approx(0.5));
  CHECK(s.multiplier(0, 9, 10) == 1.0);
  CHECK(s.multiplier(1, 0, 10) == 1.0);
  // fractional warmup: 0.5 epoch of 3 steps rounds to 2 steps
  LrSchedule n = LrSchedule::constant(0.5);
  CHECK(n.multiplier(0, 0, 3) == 0.5);
  CHECK(n.multiplier(0, 1, 3) == 1.0);
}

TEST_CASE("schedule from_name and argument errors") {
  LrScheduleOptions o;
  o.total_epochs = 10;
  o.warmup_epochs = 1;
  LrSchedule c = LrSchedule::from_name("cosine", o);
  CHECK(c.kind() == LrSchedule::Kind::cosine);
  CHECK(c.multiplier(3, 2, 5) == LrSchedule::cosine(10, 0.0, 1.0).multiplier(3, 2, 5));
  CHECK(c.describe().find("cosine") == 0);
  CHECK(LrSchedule::from_name("none", o).multiplier(0, 0, 1) == 1.0);  // warmup of 1 step
  CHECK(LrSchedule::from_name("step", o).name() == "step");
  o.milestones = {3};
  CHECK(LrSchedule::from_name("multistep", o).multiplier(3, 0, 1) == doctest::Approx(0.1));
  CHECK(LrSchedule::names().size() == 4);
  CHECK(error_of([&] { LrSchedule::from_name("exp", o); }).find("'exp'") != std::string::npos);
  LrScheduleOptions bad;
  CHECK(error_of([&] { LrSchedule::from_name("cosine", bad); }).find("total_epochs") !=
        std::string::npos);
  CHECK(error_of([&] { LrSchedule::from_name("multistep", bad); }).find("milestone") !=
        std::string::npos);
  bad.step_size = 0;
  CHECK(error_of([&] { LrSchedule::from_name("step", bad); }).find("step_size") != std::string::npos);
  CHECK(error_of([&] { LrSchedule::cosine(5, 1.5); }).find("min_multiplier") != std::string::npos);
  CHECK(error_of([&] { (void)c.multiplier(0, 5, 5); }).find("step") != std::string::npos);
  CHECK(error_of([&] { (void)c.multiplier(0, 0, 0); }).find("steps_per_epoch") != std::string::npos);
  CHECK(error_of([&] { (void)c.multiplier(-1, 0, 5); }).find("epoch") != std::string::npos);
}

// ---------------------------------------------------------------- clipping

TEST_CASE("clip_grad_norm: global norm in double, scale when above max_norm") {
  Tensor a = param({0.f, 0.f});
  Tensor b = param({0.f});
  Tensor none = param({7.f});  // no gradient: ignored
  set_grad(a, {3.f, 4.f});
  set_grad(b, {12.f});
  // total = sqrt(9 + 16 + 144) = 13 <= 20: untouched, bit for bit
  CHECK(clip_grad_norm({a, b, none}, 20.0) == 13.0);
  CHECK(a.grad().to_vector() == std::vector<float>{3.f, 4.f});
  CHECK(grad_norm({a, b}) == 13.0);
  // max_norm 6.5: coef = 6.5/(13 + 1e-6) = 0.4999999615 -> [1.5, 2, 6] (slightly under)
  CHECK(clip_grad_norm({a, b, none}, 6.5) == 13.0);
  check_close(a.grad(), {1.5, 2.0}, 1e-6);
  check_close(b.grad(), {6.0}, 1e-6);
  CHECK(grad_norm({a, b}) < 6.5);
  CHECK(grad_norm({a, b}) == doctest::Approx(6.5).epsilon(1e-6));
  CHECK(error_of([&] { clip_grad_norm({a}, 0.0); }).find("max_norm") != std::string::npos);
  // non-finite norm: returned, gradients left alone
  set_grad(b, {INFINITY});
  CHECK(std::isinf(clip_grad_norm({a, b}, 1.0)));
  CHECK(a.grad().data()[0] == doctest::Approx(1.5).epsilon(1e-6));
}

// ---------------------------------------------------------------- large tensors (TBB path)

TEST_CASE("tensors above 1M elements update exactly like small ones") {
  // Values repeat with period 1000, so every element of the big tensor must equal the
  // corresponding element of the small one bit for bit, whatever chunk it fell in.
  const int64_t period = 1000, big = 1500 * period;  // 1.5M elements: the TBB path
  std::vector<float> pv(big), gv(big);
  for (int64_t k = 0; k < big; ++k) {
    const int64_t j = k % period;
    pv[k] = std::sin(0.37f * static_cast<float>(j));
    gv[k] = std::cos(0.11f * static_cast<float>(j)) - 0.2f;
  }
  for (const std::string kind : {"sgd", "adamw"}) {
    CAPTURE(kind);
    Tensor pb = param(pv);
    Tensor ps = param(std::vector<float>(pv.begin(), pv.begin() + period));
    auto ob = make_optimizer(kind, {group({pb}, 0.05, 0.01)}, {{0.9, 0.0, true}, {}});
    auto os = make_optimizer(kind, {group({ps}, 0.05, 0.01)}, {{0.9, 0.0, true}, {}});
    for (int s = 0; s < 3; ++s) {
      set_grad(pb, gv);
      set_grad(ps, std::vector<float>(gv.begin(), gv.begin() + period));
      ob->step();
      os->step();
    }
    bool all_same = true;
    for (int64_t k = 0; k < big && all_same; ++k)
      all_same = std::memcmp(pb.data() + k, ps.data() + k % period, sizeof(float)) == 0;
    CHECK(all_same);
    CHECK(ps.data()[1] != pv[1]);  // it did move
  }
  Tensor gb = param(std::vector<float>(big, 0.f));
  set_grad(gb, gv);
  Tensor gs = param(std::vector<float>(period, 0.f));
  set_grad(gs, std::vector<float>(gv.begin(), gv.begin() + period));
  const double nb = grad_norm({gb}), ns = grad_norm({gs});
  CHECK(nb == doctest::Approx(ns * std::sqrt(1500.0)).epsilon(1e-12));
  clip_grad_norm({gb}, 1.0);
  CHECK(grad_norm({gb}) == doctest::Approx(1.0).epsilon(1e-6));
}

// ---------------------------------------------------------------- checkpoints

namespace {

struct Run {
  Tensor a, b, c;  // c only gets gradients from step 2 on (partially initialised state)
  std::unique_ptr<Optimizer> opt;
  LrSchedule schedule = LrSchedule::cosine(3, 0.05, 0.5);

  Run(const std::string& kind, const std::vector<float>& av, const std::vector<float>& bv,
      const std::vector<float>& cv) {
    a = param(av);
    b = param(bv);
    c = param(cv);
    ParamGroup q = group({b, c}, 0.02, 1e-3);
    q.min_value = 1e-3;
    q.grad_scale = 0.25;
    opt = make_optimizer(kind, {group({a}, 0.1, 5e-4), q}, {{0.9, 0.0, kind == "sgd"}, {}});
  }
  // A gradient that depends on the parameters, as a real loss would: d/dp of sum((p - t)^2 p).
  static std::vector<float> grad_of(const Tensor& p, float t) {
    std::vector<float> g(static_cast<size_t>(p.numel()));
    for (int64_t k = 0; k < p.numel(); ++k) {
      const float x = p.data()[k];
      g[k] = 3 * x * x - 4 * t * x + t * t;
    }
    return g;
  }
  void step(int64_t global_step) {
    opt->set_lr_multiplier(schedule.multiplier(global_step / 2, global_step % 2, 2));
    set_grad(a, grad_of(a, 0.3f));
    set_grad(b, grad_of(b, -0.2f));
    if (global_step >= 1)
      set_grad(c, grad_of(c, 0.7f));
    else
      c.set_grad(Tensor());
    opt->step();
  }
};

}  // namespace

TEST_CASE("checkpoint round trip: 6 steps == 3 steps, save, load into a fresh optimizer, 3 steps") {
  const std::vector<float> av = {0.5f, -0.25f, 1.5f, 0.1f}, bv = {0.8f, 0.6f}, cv = {0.05f, 1.2f, -0.3f};
  for (const std::string kind : {"sgd", "adam", "adamw"}) {
    CAPTURE(kind);
    Run full(kind, av, bv, cv);
    for (int64_t s = 0; s < 6; ++s) full.step(s);

    Run first(kind, av, bv, cv);
    for (int64_t s = 0; s < 3; ++s) first.step(s);
    const StateDict saved = first.opt->state_dict();
    const StateDict saved_copy_check = first.opt->state_dict();
    Run second(kind, first.a.to_vector(), first.b.to_vector(), first.c.to_vector());
    // Keep stepping the original: the saved StateDict must not change underneath.
    for (int64_t s = 3; s < 6; ++s) first.step(s);
    for (const auto& [key, t] : saved.tensors) {
      CAPTURE(key);
      CHECK(same_bits(t, saved_copy_check.tensors.at(key)));
    }
    second.opt->load_state_dict(saved);
    CHECK(second.opt->step_count() == 3);
    CHECK(second.opt->lr_multiplier() == saved.scalars.at("lr_multiplier"));
    for (int64_t s = 3; s < 6; ++s) second.step(s);

    for (const auto& [key, t] : saved.tensors) {  // loading copied the buffers too
      CAPTURE(key);
      CHECK(same_bits(t, saved_copy_check.tensors.at(key)));
    }
    CHECK(same_bits(second.a, full.a));
    CHECK(same_bits(second.b, full.b));
    CHECK(same_bits(second.c, full.c));
    CHECK(same_bits(first.a, full.a));
    CHECK(full.a.data()[0] != av[0]);
    const StateDict end_full = full.opt->state_dict(), end_second = second.opt->state_dict();
    CHECK(end_full.scalars == end_second.scalars);
    REQUIRE(end_full.tensors.size() == end_second.tensors.size());
    for (const auto& [key, t] : end_full.tensors) {
      CAPTURE(key);
      CHECK(same_bits(t, end_second.tensors.at(key)));
    }
    if (kind == "sgd") {
      CHECK(saved.tensors.count("group.0.param.0.momentum_buffer") == 1);
    } else {
      CHECK(saved.tensors.count("group.1.param.1.exp_avg_sq") == 1);
      CHECK(saved.scalars.at("group.1.param.1.step") == 2);  // c skipped its first step
    }
    CHECK(saved.strings.at("type") == kind);
  }
}

TEST_CASE("load_state_dict errors name the key and change nothing") {
  Tensor p = param({1.f, 2.f});
  Tensor q = param({3.f});
  Adam opt({group({p}, 0.1), group({q}, 0.1)});
  set_grad(p, {1.f, 1.f});
  set_grad(q, {1.f});
  opt.step();
  const StateDict good = opt.state_dict();

  auto fresh_error = [&](const StateDict& sd, std::vector<Tensor> params0 = {}) {
    Tensor p2 = param({0.f, 0.f});
    Tensor q2 = param({0.f});
    Adam other({group(params0.empty() ? std::vector<Tensor>{p2} : params0, 0.1), group({q2}, 0.1)});
    const std::string msg = error_of([&] { other.load_state_dict(sd); });
    CHECK(other.step_count() == 0);  // untouched after a failed load
    CHECK(other.state_dict().tensors.empty());
    return msg;
  };

  {  // shape mismatch: the same layout with a parameter of another shape
    const std::string msg = fresh_error(good, {param({0.f, 0.f, 0.f})});
    CHECK(msg.find("'group.0.param.0.exp_avg'") != std::string::npos);
    CHECK(msg.find("[3]") != std::string::npos);
  }
  {
    StateDict sd = good;
    sd.tensors.erase("group.1.param.0.exp_avg_sq");
    CHECK(fresh_error(sd).find("'group.1.param.0.exp_avg_sq'") != std::string::npos);
  }
  {
    StateDict sd = good;
    sd.tensors["group.0.param.7.exp_avg"] = Tensor::zeros({2});
    CHECK(fresh_error(sd).find("'group.0.param.7.exp_avg'") != std::string::npos);
  }
  {
    StateDict sd = good;
    sd.scalars["num_groups"] = 3;
    CHECK(fresh_error(sd).find("'num_groups'") != std::string::npos);
  }
  {
    StateDict sd = good;
    sd.scalars["group.1.num_params"] = 2;
    CHECK(fresh_error(sd).find("'group.1.num_params'") != std::string::npos);
  }
  {
    StateDict sd = good;
    sd.scalars.erase("lr_multiplier");
    CHECK(fresh_error(sd).find("'lr_multiplier'") != std::string::npos);
  }
  {
    StateDict sd = good;
    sd.scalars["group.0.param.0.step"] = 1.5;
    CHECK(fresh_error(sd).find("'group.0.param.0.step'") != std::string::npos);
  }
  {  // an SGD checkpoint into Adam
    Tensor s = param({1.f, 2.f});
    Tensor s2 = param({1.f});
    SGD sgd({group({s}, 0.1), group({s2}, 0.1)}, {0.9, 0.0, false});
    CHECK(fresh_error(sgd.state_dict()).find("'type'") != std::string::npos);
  }
  {  // momentum checkpoint into plain SGD: the buffer is unexpected
    Tensor s = param({1.f});
    SGD with({group({s}, 0.1)}, {0.9, 0.0, false});
    set_grad(s, {1.f});
    with.step();
    Tensor s3 = param({1.f});
    SGD without({group({s3}, 0.1)});
    CHECK(error_of([&] { without.load_state_dict(with.state_dict()); })
              .find("'group.0.param.0.momentum_buffer'") != std::string::npos);
  }
  // and the good one loads
  Tensor p2 = param({0.f, 0.f});
  Tensor q2 = param({0.f});
  Adam other({group({p2}, 0.1), group({q2}, 0.1)});
  other.load_state_dict(good);
  CHECK(other.step_count() == 1);
}
