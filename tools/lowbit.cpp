// lowbit.cpp: entry point of the `lowbit` command-line program.
// Exit codes: 0 ok, 1 failure (bad data, bad checkpoint, NaN loss, ...), 2 usage error.
#include <cstdio>
#include <iostream>

#include "core/error.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"lowbit: train, export and serve low-bit (2/4/8-bit) neural networks", "lowbit"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("lowbit 0.1.0"));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
