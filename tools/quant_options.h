// quant_options.h: the quantization flags shared by `lowbit train` and `lowbit bench train`
// (--method, --wbits, --abits, --first-last-bits, --layer-bits, and one flag per method option of
// the registry, e.g. --pact-init) and their translation into a validated QuantPolicy. The --method
// choices and help come from the registry's policy methods.
#pragma once
#include <CLI/CLI.hpp>
#include <map>
#include <string>
#include <vector>

#include "quant/policy.h"

namespace lowbit::cli {

struct QuantFlags {
  std::string method = "fp32";
  int wbits = 0, abits = 0;  // 0: 4 when a method is chosen, 32 for fp32
  int first_last_bits = 8;
  std::vector<std::string> layer_bits;
  std::map<std::string, std::string> options;  // the method options given (QuantPolicy::options)
};

// "--" + the option's name with '_' -> '-' (pact_init -> --pact-init).
std::string option_flag(const std::string& option_name);
void add_quant_flags(CLI::App* cmd, QuantFlags& flags, const QuantizerRegistry& registry);
// Names the flag of a method option the policy refuses (the library names the option).
QuantPolicy make_policy(const QuantFlags& flags, const QuantizerRegistry& registry);

}  // namespace lowbit::cli
