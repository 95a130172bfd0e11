// cmd_bench_gemm.cpp: `lowbit bench gemm [--threads N] [--json] [--quick] [--filter S] [--cpu-time]`:
// GMAC/s of the packed low-bit GEMM/GEMV kernels next to OpenBLAS sgemm/sgemv of the same shape.
// With --json the LAST stdout line is the JSON object of lowbit::kernels::bench_gemm.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "core/error.h"
#include "quant/kernels/bench_gemm.h"

namespace lowbit::cli {

void register_bench_gemm(CLI::App& bench) {
  auto opt = std::make_shared<kernels::BenchGemmOptions>();
  auto json = std::make_shared<bool>(false);
  CLI::App* cmd = bench.add_subcommand("gemm", "benchmark the packed int2/int4/int8 GEMM/GEMV kernels vs OpenBLAS");
  cmd->add_option("--threads", opt->threads, "threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", *json, "print the result as one JSON line (last line of stdout)");
  cmd->add_flag("--quick", opt->quick, "small shapes only (smoke test)");
  cmd->add_option("--repeats", opt->repeats, "interleaved samples per measurement (median)")->check(CLI::PositiveNumber);
  cmd->add_flag("--cpu-time", opt->cpu_time,
                "time with the thread's CPU clock (needs --threads 1): robust on a time-sliced machine");
  cmd->add_option("--filter", opt->filter, "only cases whose tag contains this, e.g. 'gemv w4a4'");
  cmd->callback([opt, json] {
    nlohmann::json r;
    try {
      r = kernels::bench_gemm(*opt);
    } catch (const Error& e) {
      // The library names its option (BenchGemmOptions::cpu_time); say it with the flags.
      std::string what = e.what();
      const std::string option = "bench_gemm: BenchGemmOptions::cpu_time needs threads == 1";
      if (what.rfind(option, 0) != 0) throw;
      throw Error("bench gemm: --cpu-time needs --threads 1" + what.substr(option.size()));
    }
    std::fputs(kernels::format_bench_gemm(r).c_str(), stdout);
    if (*json) std::printf("%s\n", r.dump().c_str());
    std::fflush(stdout);
  });
}

}  // namespace lowbit::cli
