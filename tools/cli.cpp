// cli.cpp: lowbit::cli::run (tools/cli.h), the app main() runs, and report_fatal_error.
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "core/collectives.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/cpu_features.h"
#include "tools/cli.h"
#include "tools/commands.h"

namespace lowbit::cli {

int report_fatal_error(const std::exception& e) {
  Comm& c = comm();
  const bool agreed = dynamic_cast<const AgreedError*>(&e) != nullptr;
  if (c.size() == 1 || agreed) {
    if (c.rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  // An error on this rank only, as far as we know: the others may wait in a collective forever,
  // so end the whole job. When several ranks fail at once (same bad flag everywhere), rank 0
  // aborts first and the others are killed before they print: the message appears once.
  if (c.rank() != 0) std::this_thread::sleep_for(std::chrono::seconds(1));
  std::fprintf(stderr, "error: rank %d of %d: %s\n", c.rank(), c.size(), e.what());
  std::fflush(stderr);
  c.abort(1);
  return 1;  // not reached
}

int run(int argc, char** argv, const QuantizerRegistry& registry) {
  try {
    lowbit::init_comm(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  CLI::App app{"lowbit: train, export and serve low-bit (2/4/8-bit) neural networks.\n"
               "Run 'lowbit COMMAND --help' for the options of each command.",
               "lowbit"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    return std::string("lowbit 0.1.0 (integer kernels: ") + lowbit::active_isa() + ")";
  });
  lowbit::cli::register_train(app, registry);
  lowbit::cli::register_eval(app, registry);
  lowbit::cli::register_calibrate(app, registry);
  lowbit::cli::register_export(app, registry);
  lowbit::cli::register_infer(app);
  lowbit::cli::register_inspect(app, registry);
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks: training throughput, the integer GEMM and convolution kernels, integer inference");
  bench->require_subcommand(1);
  lowbit::cli::register_bench_train(*bench, registry);
  lowbit::cli::register_bench_gemm(*bench);
  lowbit::cli::register_bench_conv(*bench);
  lowbit::cli::register_bench_fconv(*bench);
  lowbit::cli::register_bench_infer(*bench, registry);
  int status = 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::ofstream discard;  // unopened: swallows the copies of help/usage text of ranks other than 0
    const bool root = lowbit::comm().rank() == 0;
    const int code = app.exit(e, root ? std::cout : discard, root ? std::cerr : discard);
    status = code == 0 ? 0 : 2;
  } catch (const lowbit::cli::ExitWith& e) {
    status = e.code;
  } catch (const std::exception& e) {
    status = lowbit::cli::report_fatal_error(e);  // with several ranks, may end the job (MPI_Abort)
  }
  lowbit::finalize_comm();
  return status;
}

}  // namespace lowbit::cli
