// ops_pool.cpp: max/avg/global-average pooling with gradients, parallel over (n, c) planes (or,
// for nchw16c inputs, over (n, channel block) groups, 16 channels side by side; core/layout.h).
#include "core/ops_pool.h"

#include <limits>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/layout.h"
#include "core/threading.h"

namespace lowbit {

namespace {
struct PoolGeometry {
  int64_t planes, h, w, k, s, p, ho, wo;
};
PoolGeometry pool_geometry(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding, const char* op) {
  LOWBIT_CHECK(x.dim() == 4, op, ": input must be [N, C, H, W], got ", to_string(x.shape()));
  LOWBIT_CHECK(kernel >= 1 && padding >= 0 && padding * 2 <= kernel, op, ": kernel ", kernel,
               " and padding ", padding, " invalid (need kernel >= 1, 0 <= padding <= kernel/2)");
  PoolGeometry g{x.size(0) * x.size(1), x.size(2), x.size(3), kernel, stride > 0 ? stride : kernel, padding, 0, 0};
  LOWBIT_CHECK(g.h + 2 * g.p >= g.k && g.w + 2 * g.p >= g.k, op, ": kernel ", kernel,
               " larger than padded input ", to_string(x.shape()));
  g.ho = (g.h + 2 * g.p - g.k) / g.s + 1;
  g.wo = (g.w + 2 * g.p - g.k) / g.s + 1;
  return g;
}
constexpr int64_t kPlaneGrain = 16;
constexpr int64_t kB = kLayoutBlock;

// f(ih, iw) for each input pixel of output (oh, ow)'s window, row by row, padding skipped.
template <class F>
void for_window(const PoolGeometry& g, int64_t oh, int64_t ow, F f) {
  for (int64_t i = 0; i < g.k; ++i) {
    const int64_t ih = oh * g.s - g.p + i;
    if (ih < 0 || ih >= g.h) continue;
    for (int64_t j = 0; j < g.k; ++j) {
      const int64_t iw = ow * g.s - g.p + j;
      if (iw >= 0 && iw < g.w) f(ih, iw);
    }
  }
}

// max_pool2d over nchw16c: y (nchw16c) and, per output element, the pixel (ih * w + iw) of its
// maximum, found by the nchw path's rule (window scanned row by row, the first maximum wins).
void max_pool_blocked(const PoolGeometry& g, const float* px, float* py, int32_t* pa) {
  const bool two_by_two = g.k == 2 && g.s == 2 && g.p == 0;
  parallel_for(0, g.planes / kB, 1, [&](int64_t g0, int64_t g1) {
    for (int64_t gr = g0; gr < g1; ++gr) {
      const float* src = px + gr * g.h * g.w * kB;
      if (two_by_two) {  // the common case: four taps, no bounds, the same rule
        for (int64_t oh = 0; oh < g.ho; ++oh)
          for (int64_t ow = 0; ow < g.wo; ++ow) {
            const int64_t p00 = 2 * oh * g.w + 2 * ow, o = ((gr * g.ho + oh) * g.wo + ow) * kB;
            const float *v00 = src + p00 * kB, *v01 = v00 + kB, *v10 = v00 + g.w * kB, *v11 = v10 + kB;
            const int32_t a00 = static_cast<int32_t>(p00), a10 = static_cast<int32_t>(p00 + g.w);
            for (int64_t l = 0; l < kB; ++l) {
              float best = v00[l];
              int32_t arg = a00;
              arg = v01[l] > best ? a00 + 1 : arg, best = v01[l] > best ? v01[l] : best;
              arg = v10[l] > best ? a10 : arg, best = v10[l] > best ? v10[l] : best;
              arg = v11[l] > best ? a10 + 1 : arg, best = v11[l] > best ? v11[l] : best;
              py[o + l] = best;
              pa[o + l] = arg;
            }
          }
        continue;
      }
      for (int64_t oh = 0; oh < g.ho; ++oh)
        for (int64_t ow = 0; ow < g.wo; ++ow) {
          float best[kB];
          int32_t arg[kB];
          for (int64_t l = 0; l < kB; ++l) best[l] = -std::numeric_limits<float>::infinity(), arg[l] = -1;
          for_window(g, oh, ow, [&](int64_t ih, int64_t iw) {
            const float* v = src + (ih * g.w + iw) * kB;
            const int32_t pixel = static_cast<int32_t>(ih * g.w + iw);
            for (int64_t l = 0; l < kB; ++l) {
              const bool take = v[l] > best[l] || arg[l] < 0;
              best[l] = take ? v[l] : best[l];
              arg[l] = take ? pixel : arg[l];
            }
          });
          const int64_t o = ((gr * g.ho + oh) * g.wo + ow) * kB;
          std::copy_n(best, kB, py + o);
          std::copy_n(arg, kB, pa + o);
        }
    }
  });
}
}  // namespace

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  const PoolGeometry g = pool_geometry(x, kernel, stride, padding, "max_pool2d");
  if (x.layout() == Layout::nchw16c) {
    Tensor y = Tensor::empty({x.size(0), x.size(1), g.ho, g.wo}, Layout::nchw16c);
    auto argmax = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(y.numel()));
    max_pool_blocked(g, x.raw_data(), y.raw_data(), argmax->data());
    const Shape in_shape = x.shape();
    return record(y, "max_pool2d", {x}, [in_shape, g, argmax](const Tensor& gy_in) {
      const Tensor gy = to_layout(gy_in, Layout::nchw16c);
      Tensor dx = Tensor::empty(in_shape, Layout::nchw16c);
      const float* pg = gy.raw_data();
      const int32_t* pa = argmax->data();
      float* pdx = dx.raw_data();
      parallel_for(0, g.planes / kB, 1, [&](int64_t g0, int64_t g1) {
        for (int64_t gr = g0; gr < g1; ++gr) {
          float* __restrict dst = pdx + gr * g.h * g.w * kB;
          const float* __restrict gp = pg + gr * g.ho * g.wo * kB;
          const int32_t* __restrict ap = pa + gr * g.ho * g.wo * kB;
          if (g.k == 2 && g.s == 2 && g.p == 0) {
            // Disjoint windows: each input pixel is written once (its window's g where it was
            // the maximum, else 0); a last odd row or column belongs to no window.
            if (g.h != 2 * g.ho || g.w != 2 * g.wo) std::fill(dst, dst + g.h * g.w * kB, 0.f);
            for (int64_t oh = 0; oh < g.ho; ++oh)
              for (int64_t ow = 0; ow < g.wo; ++ow) {
                const int64_t o = (oh * g.wo + ow) * kB;
                const int32_t p00 = static_cast<int32_t>(2 * oh * g.w + 2 * ow), p10 = p00 + static_cast<int32_t>(g.w);
                float* __restrict d00 = dst + p00 * kB;
                float* __restrict d10 = dst + p10 * kB;
                for (int l = 0; l < kB; ++l) {
                  const float gv = gp[o + l];
                  const int32_t a = ap[o + l];
                  d00[l] = a == p00 ? gv : 0.f;
                  d00[kB + l] = a == p00 + 1 ? gv : 0.f;
                  d10[l] = a == p10 ? gv : 0.f;
                  d10[kB + l] = a == p10 + 1 ? gv : 0.f;
                }
              }
            continue;
          }
          std::fill(dst, dst + g.h * g.w * kB, 0.f);
          for (int64_t o = 0; o < g.ho * g.wo * kB; ++o) dst[ap[o] * kB + o % kB] += gp[o];
        }
      });
      return std::vector<Tensor>{dx};
    });
  }
  Tensor y = Tensor::empty({x.size(0), x.size(1), g.ho, g.wo});
  auto argmax = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(y.numel()));
  const float* px = x.data();
  float* py = y.data();
  int32_t* pa = argmax->data();
  const bool two_by_two = g.k == 2 && g.s == 2 && g.p == 0;
  parallel_for(0, g.planes, kPlaneGrain, [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const float* src = px + pl * g.h * g.w;
      if (two_by_two) {  // the common case, without bounds checks; same first-max tie rule
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          const float* r0 = src + 2 * oh * g.w;
          const float* r1 = r0 + g.w;
          const int64_t o0 = (pl * g.ho + oh) * g.wo;
          for (int64_t ow = 0; ow < g.wo; ++ow) {
            const int64_t i = 2 * ow;
            float best = r0[i];
            int32_t arg = static_cast<int32_t>(2 * oh * g.w + i);
            if (r0[i + 1] > best) best = r0[i + 1], arg += 1;
            if (r1[i] > best) best = r1[i], arg = static_cast<int32_t>((2 * oh + 1) * g.w + i);
            if (r1[i + 1] > best) best = r1[i + 1], arg = static_cast<int32_t>((2 * oh + 1) * g.w + i + 1);
            py[o0 + ow] = best;
            pa[o0 + ow] = arg;
          }
        }
        continue;
      }
      for (int64_t oh = 0; oh < g.ho; ++oh)
        for (int64_t ow = 0; ow < g.wo; ++ow) {
          float best = -std::numeric_limits<float>::infinity();
          int32_t arg = -1;
          for_window(g, oh, ow, [&](int64_t ih, int64_t iw) {
            const float v = src[ih * g.w + iw];
            if (v > best || arg < 0) {
              best = v;
              arg = static_cast<int32_t>(ih * g.w + iw);
            }
          });
          const int64_t o = (pl * g.ho + oh) * g.wo + ow;
          py[o] = best;
          pa[o] = arg;
        }
    }
  });
  const Shape in_shape = x.shape();
  return record(y, "max_pool2d", {x}, [in_shape, g, argmax](const Tensor& gy) {
    Tensor dx = Tensor::zeros(in_shape);
    const float* pg = gy.data();
    const int32_t* pa = argmax->data();
    float* pdx = dx.data();
    parallel_for(0, g.planes, kPlaneGrain, [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl)
        for (int64_t o = pl * g.ho * g.wo; o < (pl + 1) * g.ho * g.wo; ++o)
          pdx[pl * g.h * g.w + pa[o]] += pg[o];
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  const PoolGeometry g = pool_geometry(x, kernel, stride, padding, "avg_pool2d");
  Tensor y = Tensor::empty({x.size(0), x.size(1), g.ho, g.wo});
  const float* px = x.data();
  float* py = y.data();
  const float inv = 1.f / static_cast<float>(g.k * g.k);
  parallel_for(0, g.planes, kPlaneGrain, [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const float* src = px + pl * g.h * g.w;
      for (int64_t oh = 0; oh < g.ho; ++oh)
        for (int64_t ow = 0; ow < g.wo; ++ow) {
          float s = 0.f;
          for_window(g, oh, ow, [&](int64_t ih, int64_t iw) { s += src[ih * g.w + iw]; });
          py[(pl * g.ho + oh) * g.wo + ow] = s * inv;
        }
    }
  });
  const Shape in_shape = x.shape();
  return record(y, "avg_pool2d", {x}, [in_shape, g, inv](const Tensor& gy) {
    Tensor dx = Tensor::zeros(in_shape);
    const float* pg = gy.data();
    float* pdx = dx.data();
    parallel_for(0, g.planes, kPlaneGrain, [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        float* dst = pdx + pl * g.h * g.w;
        for (int64_t oh = 0; oh < g.ho; ++oh)
          for (int64_t ow = 0; ow < g.wo; ++ow) {
            const float v = pg[(pl * g.ho + oh) * g.wo + ow] * inv;
            for_window(g, oh, ow, [&](int64_t ih, int64_t iw) { dst[ih * g.w + iw] += v; });
          }
      }
    });
    return std::vector<Tensor>{dx};
  });
}

Tensor global_avg_pool2d(const Tensor& x) {
  LOWBIT_CHECK(x.dim() == 4, "global_avg_pool2d: input must be [N, C, H, W], got ", to_string(x.shape()));
  const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  LOWBIT_CHECK(hw > 0, "global_avg_pool2d: empty spatial size in ", to_string(x.shape()));
  Tensor y = Tensor::empty({x.size(0), x.size(1)});
  // Per (image, channel) the float sum over the pixels in order, in either layout (nchw16c runs
  // 16 channels side by side), so both give the same bits.
  const Layout layout = x.layout();
  const float* px = x.raw_data();
  float* py = y.data();
  if (layout == Layout::nchw16c) {
    for (int64_t gr = 0; gr < planes / kB; ++gr) {
      float s[kB] = {};
      for (int64_t j = 0; j < hw; ++j)
        for (int64_t l = 0; l < kB; ++l) s[l] += px[(gr * hw + j) * kB + l];
      for (int64_t l = 0; l < kB; ++l) py[gr * kB + l] = s[l] / static_cast<float>(hw);
    }
  } else {
    for (int64_t pl = 0; pl < planes; ++pl) {
      float s = 0.f;
      for (int64_t j = 0; j < hw; ++j) s += px[pl * hw + j];
      py[pl] = s / static_cast<float>(hw);
    }
  }
  const Shape in_shape = x.shape();
  return record(y, "global_avg_pool2d", {x}, [in_shape, layout, planes, hw](const Tensor& gy) {
    Tensor dx = Tensor::empty(in_shape, layout);
    const float* pg = gy.data();
    float* pdx = dx.raw_data();
    const float inv = 1.f / static_cast<float>(hw);
    // Plane pl's value at pixel j: nchw at pl * hw + j; nchw16c at ((pl / 16) * hw + j) * 16 + pl % 16.
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t j = 0; j < hw; ++j)
        pdx[layout == Layout::nchw16c ? ((pl / kB) * hw + j) * kB + pl % kB : pl * hw + j] = pg[pl] * inv;
    return std::vector<Tensor>{dx};
  });
}

}  // namespace lowbit
