// ops_reduce.h: differentiable reductions. Sums accumulate in double so a reduction over a
// whole layer (hundreds of thousands of terms) does not lose the small contributions.
#pragma once
#include "core/tensor.h"

namespace lowbit {

Tensor sum(const Tensor& x);   // scalar: sum of all elements; d/dx_i = 1
Tensor mean(const Tensor& x);  // scalar: sum / numel;          d/dx_i = 1/numel
// Sum over one dimension (negative counts from the end); keepdim keeps it with size 1.
Tensor sum_dim(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean_dim(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max_all(const Tensor& x);  // scalar max; gradient to the first arg-max element

}  // namespace lowbit
