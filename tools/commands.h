// commands.h: the subcommands of the `lowbit` program. Each command file registers its own
// options and callback on the CLI11 app; callbacks throw lowbit::Error on bad input (exit 1).
#pragma once
#include <CLI/CLI.hpp>

namespace lowbit::cli {
}  // namespace lowbit::cli
