// blas.h: the single-precision GEMM lowbit's float ops are built on (OpenBLAS, row-major),
// and a TBB-parallel variant that splits the rows of C into independent blocks. OpenBLAS is
// pinned to one thread (core/threading.h), so every call here is single-threaded BLAS and
// parallelism comes from TBB over disjoint output blocks: deterministic, no oversubscription.
#pragma once
#include <cstdint>

namespace lowbit {

// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major, op = transpose when trans_*.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Same contract; the M rows of C are split into blocks computed in parallel when the
// problem is big enough to amortise a task.
void sgemm_parallel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                    int64_t ldc);

}  // namespace lowbit
