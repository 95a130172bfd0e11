// lowbit.cpp: entry point of the `lowbit` command-line program.
// Exit codes: 0 ok, 1 failure (bad data, bad checkpoint, NaN loss, ...), 2 usage error.
// Under mpirun/srun every rank runs this main: MPI starts first and ends last (core/comm.h), only
// rank 0 prints usage and errors (tools/distributed.h).
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>

#include "core/comm.h"
#include "core/error.h"
#include "core/cpu_features.h"
#include "tools/commands.h"
#include "tools/distributed.h"

int main(int argc, char** argv) {
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
  lowbit::cli::register_train(app);
  lowbit::cli::register_eval(app);
  lowbit::cli::register_calibrate(app);
  lowbit::cli::register_export(app);
  lowbit::cli::register_infer(app);
  lowbit::cli::register_inspect(app);
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks: train throughput, low-bit GEMM kernels");
  bench->require_subcommand(1);
  lowbit::cli::register_bench_train(*bench);
  lowbit::cli::register_bench_gemm(*bench);
  lowbit::cli::register_bench_infer(*bench);
  int status = 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::ofstream discard;  // unopened: swallows the copies of help/usage text of ranks other than 0
    const bool root = lowbit::comm().rank() == 0;
    const int code = app.exit(e, root ? std::cout : discard, root ? std::cerr : discard);
    status = code == 0 ? 0 : 2;
  } catch (const std::exception& e) {
    status = lowbit::cli::report_fatal_error(e);  // with several ranks, may end the job (MPI_Abort)
  }
  lowbit::finalize_comm();
  return status;
}
