// ops_dropout.h: inverted dropout. Training: y = x * mask / (1 - p), mask ~ Bernoulli(1 - p)
// drawn from the given generator (deterministic for a seed); eval or p == 0: y = x.
#pragma once
#include "core/random.h"
#include "core/tensor.h"

namespace lowbit {

Tensor dropout(const Tensor& x, float p, bool training, Generator& gen);

}  // namespace lowbit
