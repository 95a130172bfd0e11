// lowbit.cpp: entry point of the `lowbit` command-line program.
// Exit codes: 0 ok, 1 failure (bad data, bad checkpoint, NaN loss, ...), 2 usage error.
#include <cstdio>
#include <exception>
#include <string>

#include "core/error.h"
#include "quant/kernels/cpu_features.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"lowbit: train, export and serve low-bit (2/4/8-bit) neural networks.\n"
               "Run 'lowbit COMMAND --help' for the options of each command.",
               "lowbit"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    return std::string("lowbit 0.1.0 (integer kernels: ") + lowbit::active_isa() + ")";
  });
  lowbit::cli::register_train(app);
  lowbit::cli::register_eval(app);
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks: train throughput, low-bit GEMM kernels");
  bench->require_subcommand(1);
  lowbit::cli::register_bench_train(*bench);
  lowbit::cli::register_bench_gemm(*bench);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
