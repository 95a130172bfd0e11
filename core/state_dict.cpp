// state_dict.cpp: prefixing and selecting StateDict entries.
#include "core/state_dict.h"

namespace lowbit {

namespace {
template <class Map>
void merge_map(Map& dst, const Map& src, const std::string& prefix) {
  for (const auto& [k, v] : src) dst[prefix.empty() ? k : prefix + "." + k] = v;
}
template <class Map>
void sub_map(Map& dst, const Map& src, const std::string& prefix) {
  const std::string p = prefix + ".";
  for (const auto& [k, v] : src)
    if (k.compare(0, p.size(), p) == 0) dst[k.substr(p.size())] = v;
}
}  // namespace

void StateDict::merge(const StateDict& other, const std::string& prefix) {
  merge_map(tensors, other.tensors, prefix);
  merge_map(scalars, other.scalars, prefix);
  merge_map(strings, other.strings, prefix);
}

StateDict StateDict::sub(const std::string& prefix) const {
  StateDict out;
  sub_map(out.tensors, tensors, prefix);
  sub_map(out.scalars, scalars, prefix);
  sub_map(out.strings, strings, prefix);
  return out;
}

}  // namespace lowbit
