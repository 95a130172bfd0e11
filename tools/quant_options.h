// quant_options.h: the quantization flags shared by `lowbit train` and `lowbit bench train`
// (--method, --wbits, --abits, --first-last-bits, --layer-bits, --pact-init) and their
// translation into a validated QuantPolicy.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "quant/policy.h"

namespace lowbit::cli {

struct QuantFlags {
  std::string method = "fp32";
  int wbits = 0, abits = 0;  // 0: 4 when a method is chosen, 32 for fp32
  int first_last_bits = 8;
  std::vector<std::string> layer_bits;
  std::string pact_init = "mse";
};

void add_quant_flags(CLI::App* cmd, QuantFlags& flags);
QuantPolicy make_policy(const QuantFlags& flags);

}  // namespace lowbit::cli
