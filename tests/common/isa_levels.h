// isa_levels.h: the kernel levels a test runs on (every one this CPU supports, scalar included);
// the others are named once, as skipped, in the test's output. Include after doctest.h.
#pragma once
#include <string>
#include <vector>

#include "core/cpu_features.h"

namespace lowbit::test {

inline std::vector<kernels::Isa> available_isas() {
  std::vector<kernels::Isa> v;
  std::string skipped;
  for (kernels::Isa isa : kernels::kIsaPreference) {
    if (kernels::isa_supported(isa)) v.push_back(isa);
    else skipped += std::string(skipped.empty() ? "" : ", ") + kernels::isa_name(isa);
  }
  static const bool reported = [&] {
    MESSAGE("kernel levels tested: " << kernels::supported_isa_names()
            << (skipped.empty() ? std::string() : "; skipped (not supported by this CPU, or not in this build): " + skipped));
    return true;
  }();
  (void)reported;
  return v;
}

}  // namespace lowbit::test
