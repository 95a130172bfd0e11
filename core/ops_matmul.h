// ops_matmul.h: matrix products on OpenBLAS sgemm (TBB-parallel over output row blocks).
#pragma once
#include "core/tensor.h"

namespace lowbit {

// [M,K] x [K,N] -> [M,N].  dA = dC B^T, dB = A^T dC.
Tensor matmul(const Tensor& a, const Tensor& b);
// Fully connected: x [N,in], weight [out,in], bias [out] (may be undefined) -> x W^T + b.
// dx = dy W, dW = dy^T x, db = sum over rows of dy.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

}  // namespace lowbit
