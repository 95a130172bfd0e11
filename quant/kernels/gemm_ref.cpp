// gemm_ref.cpp: the plain C++ ground truth of gemm.h: reads every code through the packing
// accessors' bit arithmetic, accumulates the exact dot product, applies the scalar epilogue.
// Compiled with the baseline flags only (no FMA, so fl(fl(x*s)+b) is what the code says).
#include <cmath>
#include <vector>

#include "quant/kernels/gemm_internal.h"

namespace lowbit::kernels::detail::ref {

void epilogue_block(const GemmProblem& p, int64_t r, int64_t nb, const int32_t* acc16) {
  const Epilogue& ep = p.ep;
  const uint32_t rowsum = static_cast<uint32_t>(p.a->row_sums[static_cast<size_t>(r)]);
  const float maxc = static_cast<float>(ep.max_code_out);
  for (int c = 0; c < kBlockChannels; ++c) {
    const int64_t n = nb * kBlockChannels + c;
    if (n >= p.w->n) break;
    // Unsigned arithmetic = two's complement wrap without UB; the guard makes it exact.
    const int32_t v = static_cast<int32_t>(static_cast<uint32_t>(ep.acc_mul) * static_cast<uint32_t>(acc16[c]) +
                                           static_cast<uint32_t>(ep.rowsum_mul) * rowsum);
    if (ep.kind == EpilogueKind::int32) {
      static_cast<int32_t*>(p.out)[r * p.ldo + n] = v;
      continue;
    }
    const float t = static_cast<float>(v) * p.scale_pad[n];
    const float y = t + p.bias_pad[n];
    if (ep.kind == EpilogueKind::float32) {
      static_cast<float*>(p.out)[r * p.ldo + n] = y;
    } else {
      float q = std::nearbyint(y);  // half to even under the default rounding mode
      q = q < 0.f ? 0.f : q;
      q = q > maxc ? maxc : q;
      static_cast<uint8_t*>(p.out)[r * p.ldo + n] = static_cast<uint8_t>(q);
    }
  }
}

void gemm_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1) {
  const PackedActivations& a = *p.a;
  const PackedWeights& w = *p.w;
  const int64_t K = a.k;
  std::vector<int32_t> arow(static_cast<size_t>(K)), wrow(static_cast<size_t>(K));
  std::vector<int32_t> wcodes(static_cast<size_t>((nb1 - nb0) * kBlockChannels * K), 0);
  for (int64_t n = nb0 * kBlockChannels; n < std::min(w.n, nb1 * kBlockChannels); ++n)
    for (int64_t k = 0; k < K; ++k)
      wcodes[static_cast<size_t>((n - nb0 * kBlockChannels) * K + k)] = weight_code(w, n, k);
  for (int64_t r = m0; r < m1; ++r) {
    for (int64_t k = 0; k < K; ++k) arow[static_cast<size_t>(k)] = activation_code(a, r, k);
    for (int64_t nb = nb0; nb < nb1; ++nb) {
      int32_t acc[kBlockChannels] = {};
      for (int c = 0; c < kBlockChannels; ++c) {
        const int32_t* wc = &wcodes[static_cast<size_t>(((nb - nb0) * kBlockChannels + c) * K)];
        int32_t s = 0;
        for (int64_t k = 0; k < K; ++k) s += wc[k] * arow[static_cast<size_t>(k)];
        acc[c] = s;
      }
      epilogue_block(p, r, nb, acc);
    }
  }
}

}  // namespace lowbit::kernels::detail::ref
