// layout.cpp: the nchw <-> nchw16c conversions (core/layout.h) and the to_layout op.
#include "core/layout.h"

#include "core/autograd.h"
#include "core/error.h"
#include "core/threading.h"

namespace lowbit {

const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::nchw: return "nchw";
    case Layout::nchw16c: return "nchw16c";
  }
  return "?";
}

bool can_block(const Shape& shape) {
  return shape.size() == 4 && shape[1] > 0 && shape[1] % kLayoutBlock == 0;
}

namespace {
// One image's transposition between [C/16][16][hw] (nchw) and [C/16][hw][16] (nchw16c), a block of
// 16 channels at a time; plain loops the compiler vectorises, a fallback off the hot path.
template <bool ToBlocked>
void convert(const float* src, float* dst, int64_t images, int64_t c, int64_t hw) {
  constexpr int64_t B = kLayoutBlock;
  parallel_for(0, images * (c / B), 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* s = src + b * B * hw;
      float* d = dst + b * B * hw;
      for (int64_t j = 0; j < hw; ++j)
        for (int64_t i = 0; i < B; ++i) {
          if constexpr (ToBlocked)
            d[j * B + i] = s[i * hw + j];
          else
            d[i * hw + j] = s[j * B + i];
        }
    }
  });
}
}  // namespace

void nchw_to_nchw16c(const float* src, float* dst, int64_t images, int64_t c, int64_t hw) {
  convert<true>(src, dst, images, c, hw);
}

void nchw16c_to_nchw(const float* src, float* dst, int64_t images, int64_t c, int64_t hw) {
  convert<false>(src, dst, images, c, hw);
}

Tensor to_layout(const Tensor& x, Layout layout) {
  if (x.layout() == layout) return x;
  Tensor y = Tensor::empty(x.shape(), layout);
  const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  if (layout == Layout::nchw16c)
    nchw_to_nchw16c(x.data(), y.raw_data(), n, c, hw);
  else
    nchw16c_to_nchw(x.raw_data(), y.data(), n, c, hw);
  const Layout from = x.layout();
  return record(y, "to_layout", {x}, [from](const Tensor& g) { return std::vector<Tensor>{to_layout(g, from)}; });
}

}  // namespace lowbit
