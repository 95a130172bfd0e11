// bench_conv.cpp: the kernel benchmark behind `lowbit bench conv` (see bench_conv.h).
#include "quant/kernels/bench_conv.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "core/threading.h"
#include "quant/kernels/bench_gemm.h"
#include "quant/kernels/bench_util.h"
#include "quant/kernels/conv_codes.h"
#include "quant/kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

struct Layer {
  const char* name;
  int64_t c, h, w, kernel, stride, pad, cout;
};

// The conv layers of the zoo's low-bit models (the 8-bit first layers aside).
const Layer kLayers[] = {
    {"resnet20.stage1", 16, 28, 28, 3, 1, 1, 16},   {"resnet20.down2", 16, 28, 28, 3, 2, 1, 32},
    {"resnet20.short2", 16, 28, 28, 1, 2, 0, 32},   {"resnet20.stage2", 32, 14, 14, 3, 1, 1, 32},
    {"resnet20.down3", 32, 14, 14, 3, 2, 1, 64},    {"resnet20.short3", 32, 14, 14, 1, 2, 0, 64},
    {"resnet20.stage3", 64, 7, 7, 3, 1, 1, 64},
    {"convnet.conv2", 32, 14, 14, 3, 1, 1, 64},     {"convnet.conv3", 64, 7, 7, 3, 1, 1, 128},
};

}  // namespace

nlohmann::json bench_conv(const BenchConvOptions& opt) {
  set_num_threads(1);
  const double clock = infer_clock_ghz(true);
  nlohmann::json probes = nlohmann::json::object(), results = nlohmann::json::array();
  for (Isa isa : kIsaPreference)
    if (isa != Isa::scalar && isa_supported(isa)) {
      const double g = bench::probe_peak_gmacs(isa, true);
      probes[isa_name(isa)] = {{"gmacs", g}, {"macs_per_cycle", clock > 0 ? g / clock : 0.0}};
    }
  const int grids[2][2] = {{2, -3}, {4, -15}};  // odd grids 2m - n of 2 and 4 bits (PACT-SAWB)
  for (const Layer& L : kLayers) {
    if (opt.quick && L.c > 16) continue;
    for (const auto& grid : grids) {
      const int bits = grid[0];
      const std::string tag = std::string(L.name) + " w" + std::to_string(bits) + "a" + std::to_string(bits);
      if (!opt.filter.empty() && tag.find(opt.filter) == std::string::npos) continue;
      const int64_t hp = L.h + 2 * L.pad, wp = L.w + 2 * L.pad, k = L.kernel * L.kernel * L.c;
      const int64_t oh = (hp - L.kernel) / L.stride + 1, ow = (wp - L.kernel) / L.stride + 1;
      const std::vector<uint8_t> x = bench::random_codes(opt.images * hp * wp * L.c, bits, 1);
      const std::vector<uint8_t> wc = bench::random_codes(L.cout * k, bits, 2);
      const ConvCodesWeights cw =
          pack_conv_codes_weights(pack_weights(wc.data(), L.cout, k, k, bits), 2, grid[1], L.c, L.kernel, bits);
      ConvCodesShape s;
      s.channels = cw.in_channels;
      s.height = hp;
      s.width = wp;
      s.stride = L.stride;
      s.out_height = oh;
      s.out_width = ow;
      s.act_bits = bits;
      std::vector<float> scale(static_cast<size_t>(L.cout), 0.01f), bias(static_cast<size_t>(L.cout), 1.f);
      Epilogue ep;
      ep.kind = EpilogueKind::codes;
      ep.scale = scale.data();
      ep.bias = bias.data();
      ep.max_code_out = max_code(bits);
      std::vector<uint8_t> out(static_cast<size_t>(opt.images * oh * ow * L.cout));
      const double macs = static_cast<double>(opt.images * oh * ow * L.cout * k);
      // Every applicable kernel of every level, samples interleaved.
      std::vector<const ConvCodesKernel*> kernels;
      std::vector<std::string> levels;
      for (Isa isa : kIsaPreference) {
        if (isa == Isa::scalar || !isa_supported(isa)) continue;
        const ConvCodesKernelTable t = conv_codes_kernels(isa);
        for (int i = 0; i < t.count; ++i)
          if (t.rows[i].applies(cw, bits) && std::string(t.rows[i].name).find(opt.kernel) != std::string::npos) {
            kernels.push_back(&t.rows[i]);
            levels.push_back(isa_name(isa));
          }
      }
      std::vector<std::vector<double>> samples(kernels.size());
      for (int r = 0; r < opt.repeats; ++r)
        for (size_t i = 0; i < kernels.size(); ++i)
          samples[i].push_back(bench::time_per_call(
              [&] { conv_codes_with(*kernels[i], x.data(), opt.images, s, cw, ep, out.data(), L.cout); },
              opt.min_sample_s, true));
      std::vector<double> gmacs;
      for (auto& v : samples) gmacs.push_back(macs / bench::median(v) / 1e9);
      for (size_t i = 0; i < kernels.size(); ++i) {
        // The level's last kernel is its byte multiply (the int8 chain or vpdpbusd).
        size_t base = i;
        while (base + 1 < kernels.size() && levels[base + 1] == levels[i]) ++base;
        results.push_back({{"layer", L.name}, {"wbits", bits}, {"abits", bits}, {"c", L.c}, {"h", L.h},
                           {"w", L.w}, {"kernel", L.kernel}, {"stride", L.stride}, {"cout", L.cout},
                           {"images", opt.images}, {"level", levels[i]}, {"kernel_name", kernels[i]->name},
                           {"gmacs", gmacs[i]}, {"macs_per_cycle", clock > 0 ? gmacs[i] / clock : 0.0},
                           {"vs_base", gmacs[i] / gmacs[base]}});
      }
    }
  }
  return {{"clock_ghz", clock}, {"probes", probes}, {"results", results}};
}

std::string format_bench_conv(const nlohmann::json& r) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "clock %.2f GHz (inferred); one thread, CPU time\n", r["clock_ghz"].get<double>());
  out += line;
  for (const auto& [level, p] : r["probes"].items()) {
    std::snprintf(line, sizeof line, "probe %-9s %7.1f GMAC/s  %6.1f MAC/cycle (register-only multiply-accumulate loop)\n",
                  level.c_str(), p["gmacs"].get<double>(), p["macs_per_cycle"].get<double>());
    out += line;
  }
  out += "vs base: GMAC/s over the level's last row on the same layer (its plain byte multiply)\n";
  std::snprintf(line, sizeof line, "%-17s %-5s %-20s %8s %9s %8s\n", "layer", "grid", "kernel", "GMAC/s", "MAC/cycle",
                "vs base");
  out += line;
  for (const auto& e : r["results"]) {
    std::snprintf(line, sizeof line, "%-17s w%da%d  %-20s %8.1f %9.1f %7.2fx\n", e["layer"].get<std::string>().c_str(),
                  e["wbits"].get<int>(), e["abits"].get<int>(), e["kernel_name"].get<std::string>().c_str(),
                  e["gmacs"].get<double>(), e["macs_per_cycle"].get<double>(), e["vs_base"].get<double>());
    out += line;
  }
  return out;
}

}  // namespace lowbit::kernels
