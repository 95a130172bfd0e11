// ops_norm.cpp: batch normalization forward/backward; batch sums by the deterministic chunk tree.
#include "core/ops_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/autograd.h"
#include "core/deterministic_sum.h"
#include "core/error.h"
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
  const float* px = x.data();
  const float* pgamma = gamma.defined() ? gamma.data() : nullptr;
  const float* pbeta = beta.defined() ? beta.data() : nullptr;

  std::vector<float> mean(c), invstd(c);
  double count = static_cast<double>(n * hw);
  if (opt.training) {
    // [sum x (C), sum x^2 (C)] by the deterministic batch tree in double, the type sync-BN
    // allreduces them in (core/deterministic_sum.h).
    std::vector<double> sums = batch_sum<double>(n, 2 * c, [&](int64_t i0, int64_t i1, double* acc) {
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

  Tensor y = Tensor::empty(x.shape());
  float* py = y.data();
  const bool relu_out = opt.fused_relu;
  parallel_for(0, n * c, 8, [&](int64_t p0, int64_t p1) {
    for (int64_t pl = p0; pl < p1; ++pl) {
      const int64_t ch = pl % c;
      const float scale = invstd[ch] * (pgamma ? pgamma[ch] : 1.f);
      const float shift = (pbeta ? pbeta[ch] : 0.f) - mean[ch] * scale;
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
                [x = x.detach(), gamma = gamma.detach(), beta = beta.detach(), mean, invstd, n, c, hw, count,
                 training, relu_out, reduce_backward](const Tensor& gy_in) {
    const float* px = x.data();
    const float* pgamma = gamma.defined() ? gamma.data() : nullptr;
    const float* pbeta = beta.defined() ? beta.data() : nullptr;
    Tensor dx = Tensor::empty(x.shape());
    float* pdx = dx.data();
    // With the fused ReLU the incoming gradient is masked where bn(x) <= 0, recomputed from x one
    // plane at a time into a per-thread buffer (both passes), so no masked copy goes to memory.
    const float* pg = gy_in.data();
    // Per-channel sums of g and g*xh: per-chunk partials in double ([chunks, 2C]), combined by the
    // deterministic tree twice: in double for the input gradient (the type sync-BN allreduces),
    // and in float, after rounding each chunk, for dbeta/dgamma (the type the gradient allreduce
    // adds), so both are bit-identical under any thread count and a rank split of the batch.
    const int64_t chunks = reduce_leaves(n);
    std::vector<double> parts(static_cast<size_t>(chunks * 2 * c));
    const int64_t grain = std::max<int64_t>(1, 16384 / (kReduceChunkImages * hw));  // tasks of ~16k values
    parallel_for(0, chunks * c, grain, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t chunk = t / c, ch = t % c;
        const float scale = invstd[ch] * (pgamma ? pgamma[ch] : 1.f);
        const float shift = (pbeta ? pbeta[ch] : 0.f) - mean[ch] * scale;
        double sg = 0, sgx = 0;
        for (int64_t i = chunk * kReduceChunkImages; i < std::min(n, (chunk + 1) * kReduceChunkImages); ++i) {
          const float* xp = px + (i * c + ch) * hw;
          const float* gp = gy_in.data() + (i * c + ch) * hw;
          float fsg, fsgx;
          const float m = mean[ch];
          const float* g = gp;
          if (relu_out) {  // mask first (its own loop, so both loops vectorise), then sum
            float* masked = plane_buffer(hw);
            mask_where_positive(xp, scale, shift, gp, masked, hw);
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
    parallel_for(0, n * c, 8, [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        const int64_t ch = pl % c;
        const float gm = pgamma ? pgamma[ch] : 1.f;
        const float* xp = px + pl * hw;
        const float* gp = pg + pl * hw;
        float* dp = pdx + pl * hw;
        if (relu_out) {
          const float scale = invstd[ch] * gm;
          float* masked = plane_buffer(hw);
          mask_where_positive(xp, scale, (pbeta ? pbeta[ch] : 0.f) - mean[ch] * scale, gp, masked, hw);
          gp = masked;
        }
        if (training) {
          const float k = gm * invstd[ch];
          const float mg = static_cast<float>(sums[ch] / count);
          const float mgx = static_cast<float>(sums[c + ch] / count);
          const float m = mean[ch], is = invstd[ch];
          for (int64_t j = 0; j < hw; ++j) dp[j] = k * (gp[j] - mg - (xp[j] - m) * is * mgx);
        } else {
          const float k = gm * invstd[ch];
          for (int64_t j = 0; j < hw; ++j) dp[j] = k * gp[j];
        }
      }
    });
    return std::vector<Tensor>{dx, dgamma, dbeta};
  });
}

}  // namespace lowbit
