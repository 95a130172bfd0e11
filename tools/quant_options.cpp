// quant_options.cpp: quantization flags -> QuantPolicy; the --method choices, their help and the
// method-option flags come from the registry.
#include "tools/quant_options.h"

#include "core/error.h"

namespace lowbit::cli {

std::string option_flag(const std::string& name) {
  std::string flag = "--" + name;
  for (char& c : flag)
    if (c == '_') c = '-';
  return flag;
}

void add_quant_flags(CLI::App* cmd, QuantFlags& f, const QuantizerRegistry& registry) {
  std::string help = "Quantization: fp32";
  for (const PolicyMethod& p : registry.policy_methods()) help += " | " + p.name + (p.help.empty() ? "" : " (" + p.help + ")");
  cmd->add_option("--method", f.method, help)
      ->capture_default_str()
      ->check(CLI::IsMember(registry.policy_method_names()));
  cmd->add_option("--wbits", f.wbits, "Weight bits of the middle layers: 2..8 or 32 (default 4 with a method)");
  cmd->add_option("--abits", f.abits, "Activation bits of the middle layers: 2..8 or 32 (default 4 with a method)");
  cmd->add_option("--first-last-bits", f.first_last_bits, "Bits of the first conv and last linear (32 = float)")
      ->capture_default_str();
  cmd->add_option("--layer-bits", f.layer_bits,
                  "Per-layer override PATTERN=W/A, glob on the dotted layer name (repeatable), e.g. '5.*=4/4'");
  for (const MethodOption& o : registry.all_options()) {
    const std::string name = o.name;
    cmd->add_option_function<std::string>(
           option_flag(name), [&f, name](const std::string& v) { f.options[name] = v; },
           o.help + " (default " + o.default_value + ")");
  }
}

QuantPolicy make_policy(const QuantFlags& f, const QuantizerRegistry& registry) {
  QuantPolicy p;
  p.registry = &registry;
  p.method = f.method;
  const int fallback = f.method == "fp32" ? 32 : 4;
  p.wbits = f.wbits ? f.wbits : fallback;
  p.abits = f.abits ? f.abits : fallback;
  p.first_last_bits = f.first_last_bits;
  p.options = f.options;
  for (const auto& spec : f.layer_bits) p.overrides.push_back(QuantPolicy::parse_override(spec));
  try {
    p.validate();
  } catch (const Error& e) {
    // The library names the option (pact_init); say which flag set it.
    const std::string what = e.what();
    for (const auto& entry : f.options)
      if (what.find("option '" + entry.first + "'") != std::string::npos) throw Error(option_flag(entry.first) + ": " + what);
    throw;
  }
  return p;
}

}  // namespace lowbit::cli
