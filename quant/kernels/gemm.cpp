// gemm.cpp: argument checks, the overflow guard, the per-call epilogue tables and the
// dispatch of output tiles to the level's kernels (kernel_table.h), in parallel over
// lowbit::parallel_for.
#include "quant/kernels/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/kernels/gemm_internal.h"
#include "quant/kernels/kernel_table.h"

namespace lowbit::kernels {

int64_t gemm_k_limit(int wbits, int abits, int32_t acc_mul, int32_t rowsum_mul) {
  LOWBIT_CHECK(valid_bits(wbits) && valid_bits(abits), "gemm_k_limit: bits must be 2, 4 or 8, got w",
               wbits, " a", abits);
  const int64_t kMax = std::numeric_limits<int32_t>::max();
  const int64_t wmax = max_code(wbits), amax = max_code(abits);
  // Exact result: |acc'| <= K * (wmax*amax*|acc_mul| + |rowsum_mul|*amax).
  const int64_t per_k = wmax * amax * std::llabs(acc_mul) + std::llabs(rowsum_mul) * amax;
  int64_t limit = per_k > 0 ? kMax / per_k : kMax;
  // VNNI GEMV kernels keep field j of a packed byte in its own accumulator scaled by 2^(bits*j)
  // (shifted back exactly at the end); the top field (K/P terms) must not wrap either.
  // 8-bit activations enter as signed a - 128, so |a| <= 128 there.
  const int P = codes_per_byte(wbits);
  if (P > 1) {
    const int64_t amax_signed = abits == 8 ? 128 : amax;
    const int64_t per_field = (wmax << (wbits * (P - 1))) * amax_signed;
    limit = std::min(limit, kMax / per_field * P);
  }
  return limit / kPadK * kPadK;
}

namespace {

void check_problem(const PackedActivations& a, const PackedWeights& w, const Epilogue& ep,
                   const void* out, int64_t ldo) {
  LOWBIT_CHECK(valid_bits(a.bits) && a.m > 0, "gemm: activations are not packed (bits=", a.bits,
               ", m=", a.m, ")");
  LOWBIT_CHECK(valid_bits(w.bits) && w.n > 0, "gemm: weights are not packed (bits=", w.bits,
               ", n=", w.n, ")");
  LOWBIT_CHECK(a.k == w.k, "gemm: activations have k = ", a.k, " but weights expect k = ", w.k);
  LOWBIT_CHECK(out != nullptr, "gemm: null output pointer");
  LOWBIT_CHECK(ldo >= w.n, "gemm: output leading dimension ", ldo, " must be >= n = ", w.n);
  if (ep.kind != EpilogueKind::int32)
    LOWBIT_CHECK(ep.scale != nullptr, "gemm: float/codes epilogue needs per-channel scale (n = ",
                 w.n, " floats)");
  if (ep.kind == EpilogueKind::codes)
    LOWBIT_CHECK(ep.max_code_out >= 1 && ep.max_code_out <= 255,
                 "gemm: codes epilogue max_code_out must be in [1, 255], got ", ep.max_code_out);
  const int64_t limit = gemm_k_limit(w.bits, a.bits, ep.acc_mul, ep.rowsum_mul);
  LOWBIT_CHECK(w.k_pad <= limit, "gemm: K = ", w.k, " (padded ", w.k_pad, ") with w", w.bits, "a",
               a.bits, " codes and acc_mul=", ep.acc_mul, ", rowsum_mul=", ep.rowsum_mul,
               " could overflow the int32 accumulator; the limit is K <= ", limit,
               ": split K into chunks and add the int32 results");
}

}  // namespace

void gemm_at(Isa isa, const PackedActivations& a, const PackedWeights& w, const Epilogue& ep,
             void* out, int64_t ldo) {
  LOWBIT_CHECK(isa_supported(isa), "gemm: ISA ", isa_name(isa),
               " is not supported by this CPU (available: ", supported_isa_names(), ")");
  check_problem(a, w, ep, out, ldo);
  const int64_t n_pad = w.n_blocks * kBlockChannels;
  std::vector<int32_t> corr(static_cast<size_t>(n_pad), 0);
  std::vector<float> scale(static_cast<size_t>(n_pad), 0.f), bias(static_cast<size_t>(n_pad), 0.f);
  for (int64_t n = 0; n < w.n; ++n) {
    // The SIMD kernels (avx2, avx_vnni, avx512) feed 8-bit activations as signed bytes a - 128
    // (vpdpbusd/vpmaddubsw take one unsigned and one signed operand; weights are the unsigned
    // one): add back 128*sum_k W. The reference reads the codes and ignores channel_corr.
    if (a.bits == 8) corr[n] = 128 * w.row_sums[n];
    if (ep.scale) scale[n] = ep.scale[n];
    if (ep.bias) bias[n] = ep.bias[n];
  }
  detail::GemmProblem p;
  p.a = &a;
  p.w = &w;
  p.ep = ep;
  p.out = out;
  p.ldo = ldo;
  p.channel_corr = corr.data();
  p.scale_pad = scale.data();
  p.bias_pad = bias.data();

  const int64_t M = a.m, NB = w.n_blocks;
  const KernelTable& kernels = kernel_table(isa);
  if (kernels.gemv_tile && M <= kGemvMaxRows) {
    // GEMV: weights streamed once; split the channel blocks so each task streams >= 256 KiB.
    const int64_t bytes_per_block = w.k_blocks * kBlockBytes;
    const int64_t grain = std::max<int64_t>(8, (int64_t{256} << 10) / std::max<int64_t>(1, bytes_per_block));
    parallel_for(0, NB, grain, [&](int64_t b0, int64_t b1) {
      kernels.gemv_tile(p, 0, M, b0, b1);
    });
    return;
  }
  // GEMM tiles: MC rows x up to 32 channel blocks (512 channels). MC is sized so the unpacked
  // MC x K activation block (~256 KiB) plus one 32 x K weight panel stay in L2.
  const int64_t kc = w.k_pad + 64;
  int64_t mc = std::clamp<int64_t>((int64_t{256} << 10) / kc / 8 * 8, 16, 256);
  if (isa == Isa::scalar) mc = 16;
  const int64_t ncb = 32;
  const int64_t mt = (M + mc - 1) / mc, nt = (NB + ncb - 1) / ncb;
  parallel_for(0, mt * nt, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t mi = t / nt, ni = t % nt;
      const int64_t m0 = mi * mc, m1 = std::min(M, m0 + mc);
      const int64_t b0 = ni * ncb, b1 = std::min(NB, b0 + ncb);
      kernels.gemm_tile(p, m0, m1, b0, b1);
    }
  });
}

void gemm(const PackedActivations& a, const PackedWeights& w, const Epilogue& ep, void* out,
          int64_t ldo) {
  gemm_at(active_isa_level(), a, w, ep, out, ldo);
}

void gemm_reference(const PackedActivations& a, const PackedWeights& w, const Epilogue& ep,
                    void* out, int64_t ldo) {
  gemm_at(Isa::scalar, a, w, ep, out, ldo);
}

}  // namespace lowbit::kernels
