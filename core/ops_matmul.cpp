// ops_matmul.cpp: matmul and linear with gradients.
#include "core/ops_matmul.h"

#include "core/autograd.h"
#include "core/blas.h"
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
  sgemm_parallel(false, true, rows, out_f, in, 1.f, x.data(), in, weight.data(), in,
                 bias.defined() ? 1.f : 0.f, py, out_f);
  const bool gx = x.requires_grad(), gw = weight.requires_grad();
  const bool gbias = bias.defined() && bias.requires_grad();
  return record(y, "linear", {x, weight, bias},
                [x = x.detach(), w = weight.detach(), rows, in, out_f, gx, gw, gbias](const Tensor& g) {
    Tensor dx, dw, db;
    if (gx) {
      dx = Tensor::empty({rows, in});
      sgemm_parallel(false, false, rows, in, out_f, 1.f, g.data(), out_f, w.data(), in, 0.f, dx.data(), in);
    }
    if (gw) {
      dw = Tensor::empty({out_f, in});
      sgemm_parallel(true, false, out_f, in, rows, 1.f, g.data(), out_f, x.data(), in, 0.f, dw.data(), in);
    }
    if (gbias) {
      db = Tensor::zeros({out_f});
      const float* pg = g.data();
      float* pdb = db.data();
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < out_f; ++o) pdb[o] += pg[r * out_f + o];
    }
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace lowbit
