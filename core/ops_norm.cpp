// ops_norm.cpp: batch normalization forward/backward; batch sums by the deterministic chunk tree.
#include "core/ops_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "core/deterministic_sum.h"
#include "core/error.h"
#include "core/layout.h"
#include "core/threading.h"

namespace lowbit {

namespace {
// out[j] = g[j] where x[j]*scale + shift > 0 (the fused ReLU's mask), else 0.
void mask_where_positive(const float* __restrict x, float scale, float shift, const float* __restrict g,
                         float* __restrict out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float gv = g[j];  // loaded unconditionally, so the select vectorises
    out[j] = x[j] * scale + shift > 0.f ? gv : 0.f;
  }
}
// One plane of scratch per thread, grown once and kept (a body never waits on other TBB work).
float* plane_buffer(int64_t floats) {
  thread_local std::vector<float> buffer;
  if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(static_cast<size_t>(floats));
  return buffer.data();
}

// The nchw16c passes (core/layout.h): a "group" is the 16 channels of one block of one image,
// hw pixels of 16 floats, so every loop runs across channels in the vector lanes. Per channel the
// float sums over a group's pixels run in 4 interleaved partials (pixel j into partial j % 4)
// combined as (p0 + p1) + (p2 + p3): a fixed order, independent of threads.
constexpr int64_t kB = kLayoutBlock;

struct GroupSums {
  float a[kB], b[kB];
};

// sum over pixels of term(j, l, a, b) for the 16 lanes l, in the fixed order above.
template <class Term>
GroupSums group_sums(int64_t hw, Term term) {
  float a[4][kB] = {}, b[4][kB] = {};
  int64_t j = 0;
  for (; j + 4 <= hw; j += 4)
    for (int q = 0; q < 4; ++q)
      for (int64_t l = 0; l < kB; ++l) term(j + q, l, a[q][l], b[q][l]);
  for (int q = 0; j < hw; ++j, ++q)
    for (int64_t l = 0; l < kB; ++l) term(j, l, a[q][l], b[q][l]);
  GroupSums s;
  for (int64_t l = 0; l < kB; ++l) {
    s.a[l] = (a[0][l] + a[1][l]) + (a[2][l] + a[3][l]);
    s.b[l] = (b[0][l] + b[1][l]) + (b[2][l] + b[3][l]);
  }
  return s;
}
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor running_mean,
                  Tensor running_var, const BatchNormOptions& opt) {
  LOWBIT_CHECK(x.dim() == 4 || x.dim() == 2, "batch_norm: input must be [N, C, H, W] or [N, C], got ",
               to_string(x.shape()));
  const int64_t n = x.size(0), c = x.size(1), hw = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &beta, &running_mean, &running_var})
    if (t->defined())
      LOWBIT_CHECK(t->numel() == c, "batch_norm: parameter of shape ", to_string(t->shape()),
                   " does not match ", c, " channels of input ", to_string(x.shape()));
  LOWBIT_CHECK(running_mean.defined() && running_var.defined(), "batch_norm: running stats required");
  // nchw16c input: every pass runs across the 16 channels of a block (group_sums); y, dx keep it.
  const bool blocked = x.layout() == Layout::nchw16c;
  const float* px = x.raw_data();
  const float* pgamma = gamma.defined() ? gamma.data() : nullptr;
  const float* pbeta = beta.defined() ? beta.data() : nullptr;

  std::vector<float> mean(c), invstd(c);
  double count = static_cast<double>(n * hw);
  if (opt.training) {
    // [sum x (C), sum x^2 (C)] by the deterministic batch tree in double, the type sync-BN
    // allreduces them in (core/deterministic_sum.h).
    std::vector<double> sums = batch_sum<double>(n, 2 * c, [&](int64_t i0, int64_t i1, double* acc) {
      if (blocked) {
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t cb = 0; cb < c / kB; ++cb) {
            const float* p = px + (i * c + cb * kB) * hw;
            const GroupSums gs = group_sums(hw, [p](int64_t j, int64_t l, float& s, float& s2) {
              const float v = p[j * kB + l];
              s += v;
              s2 += v * v;
            });
            for (int64_t l = 0; l < kB; ++l) {
              acc[cb * kB + l] += gs.a[l];
              acc[c + cb * kB + l] += gs.b[l];
            }
          }
        return;
      }
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t ch = 0; ch < c; ++ch) {
          const float* p = px + (i * c + ch) * hw;
          float fs, fs2;  // per-plane float partials in fixed lanes (vectorised)
          lane_sums(hw, fs, fs2, [p](int64_t j, float& s, float& s2) {
            s += p[j];
            s2 += p[j] * p[j];
          });
          acc[ch] += fs;
          acc[c + ch] += fs2;
        }
    });
    if (opt.reduce_forward) opt.reduce_forward(sums, count);
    LOWBIT_CHECK(count > 1, "batch_norm: training needs more than one value per channel, got input ",
                 to_string(x.shape()));
    float* rm = running_mean.data();
    float* rv = running_var.data();
    for (int64_t ch = 0; ch < c; ++ch) {
      const double m = sums[ch] / count;
      const double var = std::max(0.0, sums[c + ch] / count - m * m);
      mean[ch] = static_cast<float>(m);
      invstd[ch] = static_cast<float>(1.0 / std::sqrt(var + opt.eps));
      rm[ch] = (1.f - opt.momentum) * rm[ch] + opt.momentum * static_cast<float>(m);
      rv[ch] = (1.f - opt.momentum) * rv[ch] + opt.momentum * static_cast<float>(var * count / (count - 1));
    }
  } else {
    const float* rm = running_mean.data();
    const float* rv = running_var.data();
    for (int64_t ch = 0; ch < c; ++ch) {
      mean[ch] = rm[ch];
      invstd[ch] = 1.f / std::sqrt(rv[ch] + opt.eps);
    }
  }

  Tensor y = Tensor::empty(x.shape(), x.layout());
  float* py = y.raw_data();
  const bool relu_out = opt.fused_relu;
  // Per channel y = x * scale + shift (then the fused ReLU).
  std::vector<float> scales(c), shifts(c);
  for (int64_t ch = 0; ch < c; ++ch) {
    scales[ch] = invstd[ch] * (pgamma ? pgamma[ch] : 1.f);
    shifts[ch] = (pbeta ? pbeta[ch] : 0.f) - mean[ch] * scales[ch];
  }
  if (blocked) {
    parallel_for(0, n * (c / kB), 1, [&](int64_t g0, int64_t g1) {
      for (int64_t gr = g0; gr < g1; ++gr) {
        const float* sc = scales.data() + gr % (c / kB) * kB;
        const float* sh = shifts.data() + gr % (c / kB) * kB;
        const float* __restrict src = px + gr * hw * kB;
        float* __restrict dst = py + gr * hw * kB;
        for (int64_t j = 0; j < hw; ++j)
          for (int64_t l = 0; l < kB; ++l) {
            const float v = src[j * kB + l] * sc[l] + sh[l];
            dst[j * kB + l] = relu_out ? std::max(v, 0.f) : v;
          }
      }
    });
  } else parallel_for(0, n * c, 8, [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const int64_t ch = pl % c;
      const float scale = scales[ch], shift = shifts[ch];
      const float* src = px + pl * hw;
      float* dst = py + pl * hw;
      if (relu_out) {
        for (int64_t j = 0; j < hw; ++j) dst[j] = std::max(src[j] * scale + shift, 0.f);
      } else {
        for (int64_t j = 0; j < hw; ++j) dst[j] = src[j] * scale + shift;
      }
    }
  });

  const bool training = opt.training;
  auto reduce_backward = opt.reduce_backward;
  return record(y, relu_out ? "batch_norm_relu" : "batch_norm", {x, gamma, beta},
                [x = x.detach(), gamma = gamma.detach(), mean, invstd, scales, shifts, n, c, hw, count, training,
                 relu_out, reduce_backward](const Tensor& gy_in) {
    // x's layout now (a reader of data() may have made it row-major since the forward).
    const bool blocked = x.layout() == Layout::nchw16c;
    const Tensor gy = to_layout(gy_in, x.layout());
    const float* px = x.raw_data();
    const float* pg = gy.raw_data();
    const float* pgamma = gamma.defined() ? gamma.data() : nullptr;
    Tensor dx = Tensor::empty(x.shape(), x.layout());
    float* pdx = dx.raw_data();
    // With the fused ReLU the incoming gradient is masked where bn(x) <= 0, recomputed from x
    // (nchw: one plane at a time into a per-thread buffer, in both passes; nchw16c: in registers),
    // so no masked copy goes to memory.
    // Per-channel sums of g and g*xh: per-chunk partials in double ([chunks, 2C]), combined by the
    // deterministic tree twice: in double for the input gradient (the type sync-BN allreduces),
    // and in float, after rounding each chunk, for dbeta/dgamma (the type the gradient allreduce
    // adds), so both are bit-identical under any thread count and a rank split of the batch.
    const int64_t chunks = reduce_leaves(n);
    std::vector<double> parts(static_cast<size_t>(chunks * 2 * c));
    const auto chunk_images = [n](int64_t chunk) {
      return std::pair{chunk * kReduceChunkImages, std::min(n, (chunk + 1) * kReduceChunkImages)};
    };
    if (blocked) {
      parallel_for(0, chunks * (c / kB), 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t chunk = t / (c / kB), c0 = t % (c / kB) * kB;
          const float *sc = scales.data() + c0, *sh = shifts.data() + c0, *m = mean.data() + c0;
          double sg[kB] = {}, sgx[kB] = {};
          const auto [i0, i1] = chunk_images(chunk);
          for (int64_t i = i0; i < i1; ++i) {
            const float* xp = px + (i * c + c0) * hw;
            const float* gp = pg + (i * c + c0) * hw;
            const GroupSums gs = group_sums(hw, [=](int64_t j, int64_t l, float& s, float& s2) {
              const float xv = xp[j * kB + l], gv = gp[j * kB + l];
              const float g = !relu_out || xv * sc[l] + sh[l] > 0.f ? gv : 0.f;
              s += g;
              s2 += g * (xv - m[l]);
            });
            for (int64_t l = 0; l < kB; ++l) {
              sg[l] += gs.a[l];
              sgx[l] += static_cast<double>(gs.b[l]) * invstd[c0 + l];
            }
          }
          std::copy_n(sg, kB, parts.data() + chunk * 2 * c + c0);
          std::copy_n(sgx, kB, parts.data() + chunk * 2 * c + c + c0);
        }
      });
    } else {
      const int64_t grain = std::max<int64_t>(1, 16384 / (kReduceChunkImages * hw));  // tasks of ~16k values
      parallel_for(0, chunks * c, grain, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t chunk = t / c, ch = t % c;
          double sg = 0, sgx = 0;
          const auto [i0, i1] = chunk_images(chunk);
          for (int64_t i = i0; i < i1; ++i) {
            const float* xp = px + (i * c + ch) * hw;
            const float* g = pg + (i * c + ch) * hw;
            float fsg, fsgx;
            const float m = mean[ch];
            if (relu_out) {  // mask first (its own loop, so both loops vectorise), then sum
              float* masked = plane_buffer(hw);
              mask_where_positive(xp, scales[ch], shifts[ch], g, masked, hw);
              g = masked;
            }
            lane_sums(hw, fsg, fsgx, [=](int64_t j, float& sg, float& sgx) {
              sg += g[j];
              sgx += g[j] * (xp[j] - m);
            });
            sg += fsg;
            sgx += static_cast<double>(fsgx) * invstd[ch];
          }
          parts[chunk * 2 * c + ch] = sg;
          parts[chunk * 2 * c + c + ch] = sgx;
        }
      });
    }
    std::vector<float> fparts(parts.begin(), parts.end());
    tree_sum_rows(fparts.data(), chunks, 2 * c);
    tree_sum_rows(parts.data(), chunks, 2 * c);
    std::vector<double> sums(parts.begin(), parts.begin() + 2 * c);
    Tensor dgamma = Tensor::empty({c}), dbeta = Tensor::empty({c});
    std::copy_n(fparts.data(), c, dbeta.data());
    std::copy_n(fparts.data() + c, c, dgamma.data());
    // Sync BN: the input gradient needs the global sums; the parameter gradients stay local
    // (the data-parallel gradient allreduce sums them like every other parameter).
    if (training && reduce_backward) reduce_backward(sums);
    // dx = k * (g - mg - (x - m) * is * mgx) in training, k * g in eval, per channel.
    std::vector<float> ks(c), mgs(c, 0.f), mgxs(c, 0.f);
    for (int64_t ch = 0; ch < c; ++ch) {
      ks[ch] = (pgamma ? pgamma[ch] : 1.f) * invstd[ch];
      if (training) {
        mgs[ch] = static_cast<float>(sums[ch] / count);
        mgxs[ch] = static_cast<float>(sums[c + ch] / count);
      }
    }
    if (blocked) {
      parallel_for(0, n * (c / kB), 1, [&](int64_t g0, int64_t g1) {
        for (int64_t gr = g0; gr < g1; ++gr) {
          const int64_t c0 = gr % (c / kB) * kB;
          const float *sc = scales.data() + c0, *sh = shifts.data() + c0, *m = mean.data() + c0;
          const float *k = ks.data() + c0, *mg = mgs.data() + c0, *mgx = mgxs.data() + c0, *is = invstd.data() + c0;
          const float* __restrict xp = px + gr * hw * kB;
          const float* __restrict gp = pg + gr * hw * kB;
          float* __restrict dp = pdx + gr * hw * kB;
          for (int64_t j = 0; j < hw; ++j)
            for (int64_t l = 0; l < kB; ++l) {
              const float xv = xp[j * kB + l], gv = gp[j * kB + l];
              const float g = !relu_out || xv * sc[l] + sh[l] > 0.f ? gv : 0.f;
              dp[j * kB + l] = training ? k[l] * (g - mg[l] - (xv - m[l]) * is[l] * mgx[l]) : k[l] * g;
            }
        }
      });
    } else {
      parallel_for(0, n * c, 8, [&](int64_t p0, int64_t p1) {
        for (int64_t pl = p0; pl < p1; ++pl) {
          const int64_t ch = pl % c;
          const float* xp = px + pl * hw;
          const float* gp = pg + pl * hw;
          float* dp = pdx + pl * hw;
          if (relu_out) {
            float* masked = plane_buffer(hw);
            mask_where_positive(xp, scales[ch], shifts[ch], gp, masked, hw);
            gp = masked;
          }
          const float k = ks[ch];
          if (training) {
            const float mg = mgs[ch], mgx = mgxs[ch], m = mean[ch], is = invstd[ch];
            for (int64_t j = 0; j < hw; ++j) dp[j] = k * (gp[j] - mg - (xp[j] - m) * is * mgx);
          } else {
            for (int64_t j = 0; j < hw; ++j) dp[j] = k * gp[j];
          }
        }
      });
    }
    return std::vector<Tensor>{dx, dgamma, dbeta};
  });
}

}  // namespace lowbit
