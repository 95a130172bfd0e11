// quant_options.cpp: quantization flags -> QuantPolicy.
#include "tools/quant_options.h"

namespace lowbit::cli {

void add_quant_flags(CLI::App* cmd, QuantFlags& f) {
  cmd->add_option("--method", f.method,
                  "Quantization: fp32 | dorefa | pact (PACT activations + DoReFa weights) | pact-sawb (PACT "
                  "activations + SAWB weights, the 2-bit recipe) | qil | lsq")
      ->capture_default_str()
      ->check(CLI::IsMember(quant_method_names()));
  cmd->add_option("--wbits", f.wbits, "Weight bits of the middle layers: 2..8 or 32 (default 4 with a method)");
  cmd->add_option("--abits", f.abits, "Activation bits of the middle layers: 2..8 or 32 (default 4 with a method)");
  cmd->add_option("--first-last-bits", f.first_last_bits, "Bits of the first conv and last linear (32 = float)")
      ->capture_default_str();
  cmd->add_option("--layer-bits", f.layer_bits,
                  "Per-layer override PATTERN=W/A, glob on the dotted layer name (repeatable), e.g. '5.*=4/4'");
  cmd->add_option("--pact-init", f.pact_init,
                  "PACT alpha init: mse (first-batch MSE optimum) | p99 | fixed (10) | a start value, e.g. 1.0")
      ->capture_default_str();
}

QuantPolicy make_policy(const QuantFlags& f) {
  QuantPolicy p;
  p.method = f.method;
  const int fallback = f.method == "fp32" ? 32 : 4;
  p.wbits = f.wbits ? f.wbits : fallback;
  p.abits = f.abits ? f.abits : fallback;
  p.first_last_bits = f.first_last_bits;
  p.pact_init = f.pact_init;
  for (const auto& spec : f.layer_bits) p.overrides.push_back(QuantPolicy::parse_override(spec));
  p.validate();
  return p;
}

}  // namespace lowbit::cli
