// blas.cpp: OpenBLAS sgemm wrappers.
#include "core/blas.h"

#include <cblas.h>

#include <algorithm>

#include "core/threading.h"

namespace lowbit {

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  (void)num_threads();  // first use: OpenBLAS pinned to one thread (threading.h), never run inside a TBB task
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

void sgemm_parallel(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                    int64_t ldc) {
  const int threads = num_threads();
  // A task should carry at least ~2 MFLOP-ish of work; rows come in multiples of 16.
  const int64_t work = m * n * std::max<int64_t>(k, 1);
  if (threads == 1 || work < (int64_t{1} << 21) || m < 32) {
    sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  int64_t rows = (m + threads - 1) / threads;
  rows = std::max<int64_t>(16, (rows + 15) / 16 * 16);
  parallel_for(0, m, rows, [&](int64_t r0, int64_t r1) {
    const float* a_block = trans_a ? a + r0 : a + r0 * lda;
    sgemm(trans_a, trans_b, r1 - r0, n, k, alpha, a_block, lda, b, ldb, beta, c + r0 * ldc, ldc);
  });
}

}  // namespace lowbit
