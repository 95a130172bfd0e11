// int_model_internal.h: what lowbit's own tools reach behind IntModel's opaque face (not
// installed; apps use int_model.h or lowbit_runtime.h): the integer graph (`lowbit inspect`,
// compare, bench) and the kernel level its runs use.
#pragma once
#include "core/cpu_features.h"
#include "quant/runtime/int_graph.h"
#include "quant/runtime/int_model.h"

namespace lowbit {

struct IntModelAccess {
  static kernels::Isa isa(const IntModel& model);
};

}  // namespace lowbit

namespace lowbit::intq {

inline kernels::Isa isa_of(const IntModel& model) { return IntModelAccess::isa(model); }

}  // namespace lowbit::intq
