// clip.h: gradient clipping by global norm (torch.nn.utils.clip_grad_norm_).
//   total = sqrt(sum over params with a defined grad of sum(grad^2))   (accumulated in double)
//   if total > max_norm: every grad *= max_norm / (total + 1e-6)       (in place)
// Returns total (the norm before clipping). Parameters without a gradient are skipped. A
// non-finite total leaves the gradients untouched and is returned so the caller can skip the step.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace lowbit {

// Throws lowbit::Error unless max_norm > 0.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// The global gradient norm alone (same accumulation as clip_grad_norm, nothing scaled).
double grad_norm(const std::vector<Tensor>& params);

}  // namespace lowbit
