// state_dict.h: StateDict, the named tensors and scalars that make up a module's, an
// optimizer's or a training run's state. Checkpoints are StateDicts written to disk
// (core/serialize.h); keys are dotted paths such as "layer1.0.conv1.weight".
#pragma once
#include <map>
#include <string>

#include "core/tensor.h"

namespace lowbit {

struct StateDict {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, double> scalars;  // counters and settings; integers are exact below 2^53
  std::map<std::string, std::string> strings;

  // Copy every entry of `other` in under "prefix.key".
  void merge(const StateDict& other, const std::string& prefix);
  // The entries under "prefix." with the prefix removed.
  StateDict sub(const std::string& prefix) const;
};

}  // namespace lowbit
