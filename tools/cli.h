// cli.h: the `lowbit` program as a library call. run() builds the command-line app (every command
// of tools/commands.h) around a quantizer registry, parses argv and runs the command: main() is
// run(argc, argv, QuantizerRegistry::builtin()); a program (or a test) with a method of its own
// passes its extended copy, and --method, train, eval, export, calibrate and inspect --compare
// then know that method.
// Exit codes: 0 ok, 1 failure (bad data, bad checkpoint, NaN loss, ...), 2 usage error,
// 75 (EX_TEMPFAIL) training stopped by SIGTERM/SIGINT/SIGUSR1 after writing a checkpoint: resume it.
// Under mpirun/srun every rank runs it: MPI starts first and ends last (core/comm.h), only rank 0
// prints usage and errors (report_fatal_error, tools/commands.h). Without a launcher (no MPI)
// it may be called several times in one process: each call builds its own app.
#pragma once
#include "quant/registry.h"

namespace lowbit::cli {

int run(int argc, char** argv, const QuantizerRegistry& registry = QuantizerRegistry::builtin());

}  // namespace lowbit::cli
