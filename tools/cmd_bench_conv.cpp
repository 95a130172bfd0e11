// cmd_bench_conv.cpp: `lowbit bench conv [--images N] [--repeats N] [--filter S] [--kernel S] [--json] [--quick]`:
// every integer convolution kernel of every level this CPU has, on the zoo's layer shapes, one
// thread (quant/kernels/bench_conv.h). With --json the LAST stdout line is its JSON object.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "quant/kernels/bench_conv.h"

namespace lowbit::cli {

void register_bench_conv(CLI::App& bench) {
  auto opt = std::make_shared<kernels::BenchConvOptions>();
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = bench.add_subcommand(
      "conv", "MAC rate of every integer convolution kernel (lookup tables, byte multiply, vpdpbusd) per layer shape");
  cmd->add_option("--images", opt->images, "images per call")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--repeats", opt->repeats, "interleaved samples per kernel (median)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--filter", opt->filter, "only layers whose tag contains this, e.g. 'stage3 w2a2'");
  cmd->add_option("--kernel", opt->kernel, "only kernels whose name contains this, e.g. 'avx2.' or 'pair_lut'");
  cmd->add_flag("--quick", opt->quick, "the 16-channel layers only (smoke test)");
  cmd->add_flag("--json", *json, "print the result as one JSON line (last line of stdout)");
  cmd->callback([opt, json] {
    const nlohmann::json r = kernels::bench_conv(*opt);
    std::fputs(kernels::format_bench_conv(r).c_str(), stdout);
    if (*json) std::printf("%s\n", r.dump().c_str());
    std::fflush(stdout);
  });
}

}  // namespace lowbit::cli
