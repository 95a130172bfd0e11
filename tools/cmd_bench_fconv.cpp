// cmd_bench_fconv.cpp: `lowbit bench fconv [--images N] [--repeats N] [--filter S]`: GFLOP/s of the
// float direct-convolution kernels (core/conv_direct.h) of the active ISA level (LOWBIT_ISA picks
// avx2 or avx512) on the zoo's layer shapes, one thread (its CPU time), kernels only (inputs
// packed beforehand): forward, backward-data (by phases, and the dilated stride-1 forward it
// replaces) and the weight gradient (reading the dilated dy or the phases' padded one). The kernel
// before tap reuse was timed beside these at commit 01592d9 (its Kernels::forward_legacy).
// Variants of one layer are timed in turns; each number is the median of --repeats.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <ctime>
#include <vector>

#include "core/conv_direct.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/random.h"
#include "tools/commands.h"

namespace lowbit::cli {

namespace {

struct BenchFconvOptions {
  int64_t images = 128;
  int repeats = 5;
  std::string filter;
};

struct Layer {
  const char* tag;
  int64_t cin, h, w, cout, k, stride, pad;
};
// resnet20 and convnet on 28x28 inputs (the zoo's Fashion-MNIST shapes).
constexpr Layer kLayers[] = {
    {"resnet20 stage1 16->16 3x3 28x28", 16, 28, 28, 16, 3, 1, 1},
    {"resnet20 down 16->32 3x3 s2 28->14", 16, 28, 28, 32, 3, 2, 1},
    {"resnet20 stage2 32->32 3x3 14x14", 32, 14, 14, 32, 3, 1, 1},
    {"resnet20 down 32->64 3x3 s2 14->7", 32, 14, 14, 64, 3, 2, 1},
    {"resnet20 stage3 64->64 3x3 7x7", 64, 7, 7, 64, 3, 1, 1},
    {"resnet20 shortcut 16->32 1x1 s2 28->14", 16, 28, 28, 32, 1, 2, 0},
    {"resnet20 shortcut 32->64 1x1 s2 14->7", 32, 14, 14, 64, 1, 2, 0},
    {"convnet conv1 1->32 3x3 28x28", 1, 28, 28, 32, 3, 1, 1},
    {"convnet conv2 32->64 3x3 14x14", 32, 14, 14, 64, 3, 1, 1},
    {"convnet conv3 64->128 3x3 7x7", 64, 7, 7, 128, 3, 1, 1},
};

// The thread's CPU time: on a time-sliced machine (2 shared cores) wall time counts other jobs.
double thread_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double seconds_of(const std::function<void()>& f) {
  const double t0 = thread_seconds();
  f();
  return thread_seconds() - t0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<float> random_floats(int64_t n, Generator& gen) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(gen.normal());
  return v;
}

void bench_layer(const direct_conv::Kernels& k, const Layer& l, const BenchFconvOptions& opt, Generator& gen) {
  namespace dc = direct_conv;
  const int64_t B = dc::kConvBlock, n = opt.images, s = l.stride, p = l.pad;
  const int64_t ho = (l.h + 2 * p - l.k) / s + 1, wo = (l.w + 2 * p - l.k) / s + 1;
  const dc::ConvShape fwd{l.cin, l.h + 2 * p, l.w + 2 * p, l.cout, ho, wo, l.k, l.k, s};
  // The dilated backward-data of ops_conv.cpp: dy dilated by s, padded by k-1-p (+ the rows the forward skipped).
  const int64_t top = l.k - 1 - p;
  const int64_t hd = (ho - 1) * s + 1 + 2 * top + (l.h + 2 * p - l.k) % s;
  const int64_t wd = (wo - 1) * s + 1 + 2 * top + (l.w + 2 * p - l.k) % s;
  const dc::ConvShape bwd{l.cout, hd, wd, l.cin, l.h, l.w, l.k, l.k, 1};
  const int64_t x_floats = dc::blocks_of(l.cin) * fwd.in_h * fwd.in_w * B, y_floats = dc::blocks_of(l.cout) * ho * wo * B;
  const int64_t dyd_floats = dc::blocks_of(l.cout) * hd * wd * B, dx_floats = dc::blocks_of(l.cin) * l.h * l.w * B;
  const int64_t w_floats = dc::blocks_of(l.cout) * dc::blocks_of(l.cin) * l.k * l.k * B * B;

  const std::vector<float> w = random_floats(l.cout * l.cin * l.k * l.k, gen);
  const std::vector<float> x = random_floats(n * l.cin * l.h * l.w, gen), dy = random_floats(n * l.cout * ho * wo, gen);
  std::vector<float> wt(static_cast<size_t>(w_floats)), wt_flipped(wt.size()), dw(wt.size());
  dc::pack_weights(w.data(), l.cout, l.cin, l.k, l.k, false, wt.data());
  dc::pack_weights(w.data(), l.cout, l.cin, l.k, l.k, true, wt_flipped.data());
  std::vector<float> xb(static_cast<size_t>(n * x_floats)), dyb(static_cast<size_t>(n * y_floats));
  std::vector<float> dyd(static_cast<size_t>(n * dyd_floats)), yb(static_cast<size_t>(y_floats));
  std::vector<float> dxb(static_cast<size_t>(dx_floats));
  for (int64_t b = 0; b < n; ++b) {
    k.pack(x.data() + b * l.cin * l.h * l.w, l.cin, l.h, l.w, 1, p, p, fwd.in_h, fwd.in_w, xb.data() + b * x_floats);
    k.pack(dy.data() + b * l.cout * ho * wo, l.cout, ho, wo, 1, 0, 0, ho, wo, dyb.data() + b * y_floats);
    k.pack(dy.data() + b * l.cout * ho * wo, l.cout, ho, wo, s, top, top, hd, wd, dyd.data() + b * dyd_floats);
  }
  const dc::BackwardDataPlan plan(l.cin, l.h, l.w, l.cout, l.k, l.k, s, p, w.data());
  std::vector<float> scratch(static_cast<size_t>(plan.scratch_floats()));
  // dy packed straight into the plan's padded layout (what ops_conv would keep for both passes).
  const int64_t dyp_floats = plan.scratch_floats();
  std::vector<float> dyp(static_cast<size_t>(n * dyp_floats));
  for (int64_t b = 0; b < n; ++b)
    k.pack(dy.data() + b * l.cout * ho * wo, l.cout, ho, wo, 1, plan.pad_top, plan.pad_left, plan.padded_h,
           plan.padded_w, dyp.data() + b * dyp_floats);
  const dc::GradLayout dyp_layout{dyp_floats, plan.padded_h * plan.padded_w * B, plan.padded_w * B, B};
  const int64_t dyp_origin = (plan.pad_top * plan.padded_w + plan.pad_left) * B;
  const dc::GradLayout dyl{dyd_floats, hd * wd * B, s * wd * B, s * B};
  constexpr int64_t kChunk = 8;  // ops_conv's weight-gradient chunk

  struct Variant {
    const char* name;
    std::function<void()> run;
    std::vector<double> times;
  };
  std::vector<Variant> v = {
      {"fwd", [&] { for (int64_t b = 0; b < n; ++b) k.forward(fwd, xb.data() + b * x_floats, wt.data(), yb.data()); }, {}},
      {"bwd-data dilated", [&] { for (int64_t b = 0; b < n; ++b) k.forward(bwd, dyd.data() + b * dyd_floats, wt_flipped.data(), dxb.data()); }, {}},
      {"bwd-data phases", [&] { for (int64_t b = 0; b < n; ++b) dc::backward_data_image(k, plan, dyb.data() + b * y_floats, dxb.data(), scratch.data()); }, {}},
      {"bwd-data phases padded", [&] { for (int64_t b = 0; b < n; ++b) dc::backward_data_image_padded(k, plan, dyp.data() + b * dyp_floats, dxb.data()); }, {}},
      {"weight-grad", [&] {
         for (int64_t b = 0; b < n; b += kChunk)
           k.weight_grad(fwd, std::min(kChunk, n - b), xb.data() + b * x_floats, x_floats,
                         dyd.data() + b * dyd_floats + (top * wd + top) * B, dyl, dw.data());
       }, {}},
      {"weight-grad from padded dy", [&] {
         for (int64_t b = 0; b < n; b += kChunk)
           k.weight_grad(fwd, std::min(kChunk, n - b), xb.data() + b * x_floats, x_floats,
                         dyp.data() + b * dyp_floats + dyp_origin, dyp_layout, dw.data());
       }, {}},
  };
  for (Variant& var : v) var.run();  // warm-up
  for (int r = 0; r < opt.repeats; ++r)
    for (Variant& var : v) var.times.push_back(seconds_of(var.run));
  const double gflop = 2.0 * static_cast<double>(n * l.cout * l.cin * l.k * l.k * ho * wo) * 1e-9;
  std::printf("%-40s", l.tag);
  for (const Variant& var : v) std::printf(" %7.1f", gflop / median(var.times));
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace

void register_bench_fconv(CLI::App& bench) {
  auto opt = std::make_shared<BenchFconvOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "fconv", "GFLOP/s of the float direct-convolution kernels (forward, backward-data, weight gradient) per layer shape");
  cmd->add_option("--images", opt->images, "images per timed call")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--repeats", opt->repeats, "interleaved samples per kernel (median)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--filter", opt->filter, "only layers whose tag contains this, e.g. 'resnet20'");
  cmd->callback([opt] {
    const kernels::Isa isa = kernels::active_isa_level();
    const direct_conv::Kernels k = direct_conv::kernels_for(isa);
    LOWBIT_CHECK(k.forward != nullptr, "bench fconv: the ", kernels::isa_name(isa),
                 " level has no direct float kernels (LOWBIT_ISA=avx2 or avx512)");
    std::printf("float direct conv, level %s, %lld images, one thread (CPU time), GFLOP/s (median of %d)\n", kernels::isa_name(isa),
                static_cast<long long>(opt->images), opt->repeats);
    // bd-dil: backward-data as the stride-1 forward over the dilated dy (ops_conv.cpp before phases);
    // bd-phas: by phases from unpadded dy (one copy into the scratch); bd-ppad: from dy packed into
    // the plan's padded layout; wg-dil / wg-pad: weight gradient reading the dilated dy / the padded
    // undilated dy.
    std::printf("%-40s %7s %7s %7s %7s %7s %7s\n", "layer", "fwd", "bd-dil", "bd-phas", "bd-ppad", "wg-dil",
                "wg-pad");
    Generator gen(7);
    for (const Layer& l : kLayers)
      if (std::string(l.tag).find(opt->filter) != std::string::npos) bench_layer(k, l, *opt, gen);
  });
}

}  // namespace lowbit::cli
