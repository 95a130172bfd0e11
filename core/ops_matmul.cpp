// ops_matmul.cpp: matmul and linear with gradients.
#include "core/ops_matmul.h"

#include <algorithm>

#include "core/autograd.h"
#include "core/blas.h"
#include "core/deterministic_sum.h"
#include "core/error.h"
#include "core/threading.h"

namespace lowbit {

Tensor matmul(const Tensor& a, const Tensor& b) {
  LOWBIT_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "matmul: shapes ",
               to_string(a.shape()), " and ", to_string(b.shape()), " do not multiply ([M,K] x [K,N])");
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  Tensor out = Tensor::empty({m, n});
  sgemm_parallel(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, out.data(), n);
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return record(out, "matmul", {a, b}, [a = a.detach(), b = b.detach(), m, n, k, ga, gb](const Tensor& g) {
    Tensor da, db;
    if (ga) {
      da = Tensor::empty({m, k});
      sgemm_parallel(false, true, m, k, n, 1.f, g.data(), n, b.data(), n, 0.f, da.data(), k);
    }
    if (gb) {
      db = Tensor::empty({k, n});
      sgemm_parallel(true, false, k, n, m, 1.f, a.data(), k, g.data(), n, 0.f, db.data(), n);
    }
    return std::vector<Tensor>{da, db};
  });
}

namespace {
// body(r0, r1) over the batch in the fixed chunks of core/deterministic_sum.h, in parallel. Why
// not one sgemm over all rows: OpenBLAS's rounding of a row depends on the call's M (seen on
// 0.3.21 Haswell kernels), so rows must always be computed in calls of the same fixed shape for
// --threads and a rank split of the batch to leave every output bit unchanged.
template <class Body>
void for_row_chunks(int64_t rows, Body&& body) {
  parallel_for(0, reduce_leaves(rows), 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      body(c * kReduceChunkImages, std::min(rows, (c + 1) * kReduceChunkImages));
  });
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  LOWBIT_CHECK(x.dim() == 2, "linear: input must be [N, in_features], got ", to_string(x.shape()));
  LOWBIT_CHECK(weight.dim() == 2 && weight.size(1) == x.size(1), "linear: weight ",
               to_string(weight.shape()), " does not match input ", to_string(x.shape()),
               " (expected [out_features, ", x.size(1), "])");
  const int64_t rows = x.size(0), in = x.size(1), out_f = weight.size(0);
  if (bias.defined())
    LOWBIT_CHECK(bias.dim() == 1 && bias.size(0) == out_f, "linear: bias ", to_string(bias.shape()),
                 " does not match ", out_f, " output features");
  Tensor y = Tensor::empty({rows, out_f});
  float* py = y.data();
  if (bias.defined()) {
    const float* pb = bias.data();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out_f; ++o) py[r * out_f + o] = pb[o];
  }
  const float* px = x.data();
  const float* pw = weight.data();
  for_row_chunks(rows, [&](int64_t r0, int64_t r1) {
    sgemm(false, true, r1 - r0, out_f, in, 1.f, px + r0 * in, in, pw, in, bias.defined() ? 1.f : 0.f,
          py + r0 * out_f, out_f);
  });
  const bool gx = x.requires_grad(), gw = weight.requires_grad();
  const bool gbias = bias.defined() && bias.requires_grad();
  return record(y, "linear", {x, weight, bias},
                [x = x.detach(), w = weight.detach(), rows, in, out_f, gx, gw, gbias](const Tensor& g) {
    Tensor dx, dw, db;
    const float* pg = g.data();
    if (gx) {
      dx = Tensor::empty({rows, in});
      float* pdx = dx.data();
      const float* pw = w.data();
      for_row_chunks(rows, [&](int64_t r0, int64_t r1) {
        sgemm(false, false, r1 - r0, in, out_f, 1.f, pg + r0 * out_f, out_f, pw, in, 0.f, pdx + r0 * in, in);
      });
    }
    // dW = dY^T X and db = sum of dY rows are sums over the batch: per-chunk sgemms and row sums,
    // combined by the fixed tree (core/deterministic_sum.h), never one sgemm with K = batch.
    if (gw) {
      const float* px = x.data();
      const auto sums = batch_sum<float>(rows, out_f * in, [&](int64_t r0, int64_t r1, float* acc) {
        sgemm(true, false, out_f, in, r1 - r0, 1.f, pg + r0 * out_f, out_f, px + r0 * in, in, 0.f, acc, in);
      });
      dw = Tensor::empty({out_f, in});
      std::copy(sums.begin(), sums.end(), dw.data());
    }
    if (gbias) {
      const auto sums = batch_sum<float>(rows, out_f, [&](int64_t r0, int64_t r1, float* acc) {
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t o = 0; o < out_f; ++o) acc[o] += pg[r * out_f + o];
      });
      db = Tensor::empty({out_f});
      std::copy(sums.begin(), sums.end(), db.data());
    }
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace lowbit
