// commands.h: the subcommands of the `lowbit` program. Each command file registers its own
// options and callback on the CLI11 app; callbacks throw lowbit::Error on bad input (exit 1).
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace lowbit::cli {

void register_train(CLI::App& app);
void register_eval(CLI::App& app);
void register_calibrate(CLI::App& app);
void register_bench_train(CLI::App& bench);
void register_bench_gemm(CLI::App& bench);
void register_export(CLI::App& app);       // cmd_export.cpp
void register_infer(CLI::App& app);        // cmd_infer.cpp: infer, inspect, bench infer
void register_inspect(CLI::App& app);
void register_bench_infer(CLI::App& bench);

// Print the JSON object as the last stdout line (the contract scripts rely on).
void print_json_line(const std::string& json);
// Peak resident memory of this process in MiB.
double peak_rss_mb();

}  // namespace lowbit::cli
