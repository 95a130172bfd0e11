// ops_reduce.cpp: sum/mean over everything or one dimension, with gradients.
#include "core/ops_reduce.h"

#include <algorithm>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops_elementwise.h"

namespace lowbit {

Tensor sum(const Tensor& x) {
  double acc = 0.0;
  const float* p = x.data();
  for (int64_t i = 0; i < x.numel(); ++i) acc += p[i];
  const Shape s = x.shape();
  return record(Tensor::scalar(static_cast<float>(acc)), "sum", {x},
                [s](const Tensor& g) { return std::vector<Tensor>{Tensor::full(s, g.item())}; });
}

Tensor mean(const Tensor& x) {
  LOWBIT_CHECK(x.numel() > 0, "mean of an empty tensor ", to_string(x.shape()));
  return mul_scalar(sum(x), 1.f / static_cast<float>(x.numel()));
}

namespace {
// View x as [outer, n, inner] around dimension d.
void split_dims(const Shape& s, int64_t d, int64_t& outer, int64_t& n, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= s[i];
  n = s[d];
  for (size_t i = d + 1; i < s.size(); ++i) inner *= s[i];
}
int64_t normalize_dim(const Tensor& x, int64_t dim) {
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  LOWBIT_CHECK(d >= 0 && d < x.dim(), "dimension ", dim, " out of range for shape ", to_string(x.shape()));
  return d;
}
}  // namespace

Tensor sum_dim(const Tensor& x, int64_t dim, bool keepdim) {
  const int64_t d = normalize_dim(x, dim);
  int64_t outer, n, inner;
  split_dims(x.shape(), d, outer, n, inner);
  Shape kept = x.shape();
  kept[d] = 1;
  Tensor out = Tensor::zeros(kept);
  const float* px = x.data();
  float* po = out.data();
  std::vector<double> acc(inner);
  for (int64_t o = 0; o < outer; ++o) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < inner; ++i) acc[i] += px[(o * n + j) * inner + i];
    for (int64_t i = 0; i < inner; ++i) po[o * inner + i] = static_cast<float>(acc[i]);
  }
  if (!keepdim) {
    Shape squeezed = x.shape();
    squeezed.erase(squeezed.begin() + d);
    out = out.reshape(squeezed);
  }
  const Shape in_shape = x.shape();
  return record(out, "sum_dim", {x}, [in_shape, kept, outer, n, inner](const Tensor& g) {
    Tensor gx = Tensor::empty(in_shape);
    const float* pg = g.data();  // same element order as `kept`
    float* pgx = gx.data();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < n; ++j)
        std::copy(pg + o * inner, pg + (o + 1) * inner, pgx + (o * n + j) * inner);
    return std::vector<Tensor>{gx};
  });
}

Tensor mean_dim(const Tensor& x, int64_t dim, bool keepdim) {
  const int64_t n = x.size(dim);
  LOWBIT_CHECK(n > 0, "mean over an empty dimension of ", to_string(x.shape()));
  return mul_scalar(sum_dim(x, dim, keepdim), 1.f / static_cast<float>(n));
}

Tensor max_all(const Tensor& x) {
  LOWBIT_CHECK(x.numel() > 0, "max of an empty tensor");
  const float* p = x.data();
  const int64_t arg = std::max_element(p, p + x.numel()) - p;
  const Shape s = x.shape();
  return record(Tensor::scalar(p[arg]), "max_all", {x}, [s, arg](const Tensor& g) {
    Tensor gx = Tensor::zeros(s);
    gx.data()[arg] = g.item();
    return std::vector<Tensor>{gx};
  });
}

}  // namespace lowbit
