// ops_pool.h: pooling over the spatial dims of NCHW tensors.
// max_pool2d: y = max over the window (padding never wins); gradient to the first arg-max.
// avg_pool2d: y = mean over the window, padding counted as zeros (count_include_pad).
// global_avg_pool2d: [N, C, H, W] -> [N, C], the mean over H*W.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace lowbit {

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride = 0, int64_t padding = 0);
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride = 0, int64_t padding = 0);
Tensor global_avg_pool2d(const Tensor& x);

}  // namespace lowbit
