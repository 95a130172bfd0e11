// ops_elementwise.cpp: broadcasting binary ops and unary ops with their gradients.
#include "core/ops_elementwise.h"

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/threading.h"

namespace lowbit {

namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per task: far above the task overhead

// out[i] = f(a[i]) over contiguous data, in parallel chunks; out keeps a's layout.
template <class F>
Tensor map_unary(const Tensor& a, F f) {
  Tensor out = Tensor::empty(a.shape(), a.layout());
  const float* __restrict pa = a.raw_data();
  float* __restrict po = out.raw_data();
  parallel_for(0, a.numel(), kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) po[i] = f(pa[i]);
  });
  return out;
}

// out[i] = f(a[i], b[i]) for same-shape tensors: in their layout when they share one, else
// row-major.
template <class F>
Tensor map_binary_same(const Tensor& a, const Tensor& b, F f) {
  const Layout layout = a.layout() == b.layout() ? a.layout() : Layout::nchw;
  Tensor out = Tensor::empty(a.shape(), layout);
  const bool raw = layout != Layout::nchw;
  const float* __restrict pa = raw ? a.raw_data() : a.data();
  const float* __restrict pb = raw ? b.raw_data() : b.data();
  float* __restrict po = out.raw_data();
  parallel_for(0, a.numel(), kGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) po[i] = f(pa[i], pb[i]);
  });
  return out;
}

// Broadcasting map: strides of 0 on broadcast dimensions.
template <class F>
Tensor map_binary(const Tensor& a, const Tensor& b, F f) {
  if (a.shape() == b.shape()) return map_binary_same(a, b, f);
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = Tensor::empty(out_shape);
  const float* pa = a.data();
  const float* pb = b.data();
  float* po = out.data();
  const int64_t n = out.numel();
  if (b.numel() == 1 && out_shape == a.shape()) {
    const float s = pb[0];
    for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], s);
    return out;
  }
  if (a.numel() == 1 && out_shape == b.shape()) {
    const float s = pa[0];
    for (int64_t i = 0; i < n; ++i) po[i] = f(s, pb[i]);
    return out;
  }
  const size_t rank = out_shape.size();
  auto strides_for = [&](const Shape& s) {
    std::vector<int64_t> st(rank, 0);
    const auto cs = contiguous_strides(s);
    for (size_t i = 0; i < s.size(); ++i)
      st[rank - s.size() + i] = s[i] == 1 ? 0 : cs[i];
    return st;
  };
  const auto sa = strides_for(a.shape()), sb = strides_for(b.shape());
  const int64_t inner = rank ? out_shape[rank - 1] : 1;
  const int64_t ia = rank ? sa[rank - 1] : 0, ib = rank ? sb[rank - 1] : 0;
  std::vector<int64_t> idx(rank, 0);
  for (int64_t base = 0; base < n; base += inner) {
    int64_t oa = 0, ob = 0;
    for (size_t d = 0; d + 1 < rank; ++d) {
      oa += idx[d] * sa[d];
      ob += idx[d] * sb[d];
    }
    for (int64_t j = 0; j < inner; ++j) po[base + j] = f(pa[oa + j * ia], pb[ob + j * ib]);
    for (size_t d = rank - 1; d-- > 0;) {
      if (++idx[d] < out_shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = map_binary(a, b, [](float x, float y) { return x + y; });
  const Shape sa = a.shape(), sb = b.shape();
  return record(out, "add", {a, b}, [sa, sb](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, sa), sum_to_shape(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = map_binary(a, b, [](float x, float y) { return x - y; });
  const Shape sa = a.shape(), sb = b.shape();
  return record(out, "sub", {a, b}, [sa, sb](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, sa), sum_to_shape(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = map_binary(a, b, [](float x, float y) { return x * y; });
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return record(out, "mul", {a, b}, [a = a.detach(), b = b.detach(), ga, gb](const Tensor& g) {
    return std::vector<Tensor>{ga ? sum_to_shape(mul(g, b), a.shape()) : Tensor(),
                               gb ? sum_to_shape(mul(g, a), b.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = map_binary(a, b, [](float x, float y) { return x / y; });
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return record(out, "div", {a, b}, [a = a.detach(), b = b.detach(), ga, gb](const Tensor& g) {
    Tensor gin_b;
    if (gb) {
      // d(a/b)/db = -a / b^2
      Tensor t = map_binary(a, b, [](float x, float y) { return -x / (y * y); });
      gin_b = sum_to_shape(mul(g, t), b.shape());
    }
    return std::vector<Tensor>{ga ? sum_to_shape(div(g, b), a.shape()) : Tensor(), gin_b};
  });
}

Tensor add_scalar(const Tensor& a, float s) {
  Tensor out = map_unary(a, [s](float x) { return x + s; });
  return record(out, "add_scalar", {a}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor mul_scalar(const Tensor& a, float s) {
  Tensor out = map_unary(a, [s](float x) { return x * s; });
  return record(out, "mul_scalar", {a}, [s](const Tensor& g) {
    return std::vector<Tensor>{map_unary(g, [s](float x) { return x * s; })};
  });
}

Tensor neg(const Tensor& a) {
  Tensor out = map_unary(a, [](float x) { return -x; });
  return record(out, "neg", {a}, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

Tensor relu(const Tensor& x) {
  Tensor out = map_unary(x, [](float v) { return v > 0.f ? v : 0.f; });
  return record(out, "relu", {x}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{map_binary_same(g, y, [](float gv, float yv) { return yv > 0.f ? gv : 0.f; })};
  });
}

Tensor add_relu(const Tensor& a, const Tensor& b) {
  LOWBIT_CHECK(a.shape() == b.shape(), "add_relu: shapes ", to_string(a.shape()), " and ", to_string(b.shape()),
               " differ");
  Tensor out = map_binary_same(a, b, [](float x, float y) {
    const float s = x + y;
    return s > 0.f ? s : 0.f;
  });
  return record(out, "add_relu", {a, b}, [y = out.detach()](const Tensor& g) {
    Tensor masked = map_binary_same(g, y, [](float gv, float yv) { return yv > 0.f ? gv : 0.f; });
    return std::vector<Tensor>{masked, masked};
  });
}

Tensor clamp(const Tensor& x, float lo, float hi) {
  LOWBIT_CHECK(lo <= hi, "clamp: lower bound ", lo, " is above upper bound ", hi);
  Tensor out = map_unary(x, [lo, hi](float v) { return std::fmin(std::fmax(v, lo), hi); });
  return record(out, "clamp", {x}, [x = x.detach(), lo, hi](const Tensor& g) {
    return std::vector<Tensor>{
        map_binary_same(g, x, [lo, hi](float gv, float xv) { return xv >= lo && xv <= hi ? gv : 0.f; })};
  });
}

Tensor tanh(const Tensor& x) {
  Tensor out = map_unary(x, [](float v) { return std::tanh(v); });
  return record(out, "tanh", {x}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{map_binary_same(g, y, [](float gv, float yv) { return gv * (1.f - yv * yv); })};
  });
}

Tensor abs(const Tensor& x) {
  Tensor out = map_unary(x, [](float v) { return std::fabs(v); });
  return record(out, "abs", {x}, [x = x.detach()](const Tensor& g) {
    return std::vector<Tensor>{map_binary_same(g, x, [](float gv, float xv) {
      return xv > 0.f ? gv : (xv < 0.f ? -gv : 0.f);
    })};
  });
}

Tensor exp(const Tensor& x) {
  Tensor out = map_unary(x, [](float v) { return std::exp(v); });
  return record(out, "exp", {x}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{map_binary_same(g, y, [](float gv, float yv) { return gv * yv; })};
  });
}

Tensor log(const Tensor& x) {
  Tensor out = map_unary(x, [](float v) { return std::log(v); });
  return record(out, "log", {x}, [x = x.detach()](const Tensor& g) {
    return std::vector<Tensor>{map_binary_same(g, x, [](float gv, float xv) { return gv / xv; })};
  });
}

Tensor sqrt(const Tensor& x) {
  Tensor out = map_unary(x, [](float v) { return std::sqrt(v); });
  return record(out, "sqrt", {x}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{map_binary_same(g, y, [](float gv, float yv) { return gv * 0.5f / yv; })};
  });
}

Tensor square(const Tensor& x) {
  Tensor out = map_unary(x, [](float v) { return v * v; });
  return record(out, "square", {x}, [x = x.detach()](const Tensor& g) {
    return std::vector<Tensor>{map_binary_same(g, x, [](float gv, float xv) { return 2.f * gv * xv; })};
  });
}

Tensor sigmoid(const Tensor& x) {
  Tensor out = map_unary(x, [](float v) { return 1.f / (1.f + std::exp(-v)); });
  return record(out, "sigmoid", {x}, [y = out.detach()](const Tensor& g) {
    return std::vector<Tensor>{map_binary_same(g, y, [](float gv, float yv) { return gv * yv * (1.f - yv); })};
  });
}

}  // namespace lowbit
