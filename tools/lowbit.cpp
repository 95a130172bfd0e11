// lowbit.cpp: entry point of the `lowbit` command-line program: the library's run() with the
// builtin quantizer methods (tools/cli.h has the exit codes and the MPI behaviour).
#include "tools/cli.h"

int main(int argc, char** argv) { return lowbit::cli::run(argc, argv, lowbit::QuantizerRegistry::builtin()); }
