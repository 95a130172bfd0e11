// commands.h: the subcommands of the `lowbit` program. Each command file registers its own
// options and callback on the CLI11 app; callbacks throw lowbit::Error on bad input (exit 1).
// The commands only parse arguments and print: training, checkpoints and communication are the
// library's (models/trainer.h, models/checkpoint.h, layers/data_parallel.h, core/collectives.h).
#pragma once
#include <CLI/CLI.hpp>
#include <exception>
#include <string>

#include "quant/registry.h"

namespace lowbit::cli {

// Commands that build, convert or read quantized models take the registry lowbit::cli::run was
// given (tools/cli.h); it outlives the parse and the callbacks.
void register_train(CLI::App& app, const QuantizerRegistry& registry);
void register_eval(CLI::App& app, const QuantizerRegistry& registry);
void register_calibrate(CLI::App& app, const QuantizerRegistry& registry);
void register_bench_train(CLI::App& bench, const QuantizerRegistry& registry);
void register_bench_gemm(CLI::App& bench);
void register_bench_conv(CLI::App& bench);   // cmd_bench_conv.cpp
void register_bench_fconv(CLI::App& bench);  // cmd_bench_fconv.cpp: the float direct-conv kernels
void register_export(CLI::App& app, const QuantizerRegistry& registry);  // cmd_export.cpp
void register_infer(CLI::App& app);        // cmd_infer.cpp: infer, inspect, bench infer
void register_inspect(CLI::App& app, const QuantizerRegistry& registry);
void register_bench_infer(CLI::App& bench, const QuantizerRegistry& registry);

// Print the JSON object as the last stdout line (the contract scripts rely on).
void print_json_line(const std::string& json);
// Peak resident memory of this process in MiB.
double peak_rss_mb();
// Rank 0 of comm(): the only rank that prints.
bool is_root();
// Prints a line (or block) of text on stderr, with a final newline.
void log_line(const std::string& text);
// Exit status of a training run that a stop signal ended after writing a checkpoint: EX_TEMPFAIL
// (sysexits.h), "try again": a job script requeues the job, which continues with --resume.
constexpr int kExitStoppedResumable = 75;
// Thrown by a command's callback (after it printed what it has to say) to end `lowbit` with `code`.
struct ExitWith {
  int code;
};

// For run() (tools/cli.h): reports an exception that ended a command and returns the exit status (1). An
// AgreedError (or any error with one rank) is printed by rank 0 only. Any other error with several
// ranks may have happened on this rank alone while the others wait in a collective: print it with
// the rank and MPI_Abort the job, so nothing hangs.
int report_fatal_error(const std::exception& e);

}  // namespace lowbit::cli
