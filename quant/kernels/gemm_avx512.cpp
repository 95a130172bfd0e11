// gemm_avx512.cpp: AVX-512 VNNI (vpdpbusd) GEMM and GEMV kernels for u2/u4/u8 weights x
// u2/u4/u8 activations. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni only.
//
// vpdpbusd multiplies UNSIGNED bytes (first source) by SIGNED bytes (second source) and adds
// groups of 4 products into int32 lanes, without saturation. Weights (0..255) are the unsigned
// operand, loaded as whole zmm; activations are the signed operand, one dword (4 k-values of one
// row) broadcast to all 16 lanes. 2/4-bit activation codes fit s8 as they are; 8-bit ones enter
// as a - 128 and gemm.cpp adds back 128 * sum_k W[n][k] per channel (channel_corr).
//
// GEMM (rows > kGemvMaxRows): per tile, all rows' activations are unpacked once into an
// L2-resident s8 block; per 32-channel panel the packed weights are unpacked once into an
// L1/L2-resident u8 buffer [k/4][32 ch][4] (cost amortised over all rows of the tile), then an
// 8-row x 32-channel micro-kernel (16 zmm accumulators: few enough that GCC keeps every one in
// a register; 8 broadcasts + 2 weight loads per 16 vpdpbusd; 16 x 16 for a lone 16-channel block) runs over the whole K and applies
// the epilogue straight from registers.
// GEMV (rows <= 8, in passes of 4): the packed blocks are unpacked in registers: one AND with the field mask
// (2^b-1) << (b*j) per k-group j, no shift; field j goes to its own accumulator that therefore
// holds 2^(b*j) * (partial sum), shifted back exactly (arithmetic >> b*j) before the epilogue.
// The weight stream is read exactly once, at its packed size.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "quant/kernels/gemm_internal.h"

namespace lowbit::kernels::detail::avx512 {
namespace {

#include "quant/kernels/expand_rows.inc"

struct Scratch {
  AlignedBytes abuf, wbuf;
  uint8_t* a(size_t n) {
    if (abuf.size() < n) abuf = AlignedBytes(n);
    return abuf.data();
  }
  uint8_t* w(size_t n) {
    if (wbuf.size() < n) wbuf = AlignedBytes(n);
    return wbuf.data();
  }
};
thread_local Scratch t_scratch;

inline __m512i bcast_dword(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// Per-row constants of the epilogue.
struct RowEpi {
  __m512i acc_mul, row_term;
  bool affine;
};
inline RowEpi row_epilogue(const GemmProblem& p, int64_t r) {
  const uint32_t rs = static_cast<uint32_t>(p.a->row_sums[static_cast<size_t>(r)]);
  RowEpi e;
  e.affine = p.ep.acc_mul != 1 || p.ep.rowsum_mul != 0;
  e.acc_mul = _mm512_set1_epi32(p.ep.acc_mul);
  e.row_term = _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(p.ep.rowsum_mul) * rs));
  return e;
}

// Epilogue for row r, channels [16*nb, 16*nb+16): same operations, same order as
// ref::epilogue_block (cvt, mul, add: two roundings, -ffp-contract=off; RNE rounding).
inline void epilogue16(const GemmProblem& p, const RowEpi& e, int64_t r, int64_t nb, __m512i acc) {
  const int64_t n0 = nb * kBlockChannels;
  const int64_t valid = std::min<int64_t>(kBlockChannels, p.w->n - n0);
  const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
  acc = _mm512_add_epi32(acc, _mm512_loadu_si512(p.channel_corr + n0));
  if (e.affine) acc = _mm512_add_epi32(_mm512_mullo_epi32(acc, e.acc_mul), e.row_term);
  const int64_t off = r * p.ldo + n0;
  if (p.ep.kind == EpilogueKind::int32) {
    _mm512_mask_storeu_epi32(static_cast<int32_t*>(p.out) + off, mask, acc);
    return;
  }
  const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_loadu_ps(p.scale_pad + n0));
  const __m512 y = _mm512_add_ps(t, _mm512_loadu_ps(p.bias_pad + n0));
  if (p.ep.kind == EpilogueKind::float32) {
    _mm512_mask_storeu_ps(static_cast<float*>(p.out) + off, mask, y);
    return;
  }
  __m512 q = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  q = _mm512_max_ps(q, _mm512_setzero_ps());
  q = _mm512_min_ps(q, _mm512_set1_ps(static_cast<float>(p.ep.max_code_out)));
  _mm512_mask_cvtepi32_storeu_epi8(static_cast<uint8_t*>(p.out) + off, mask, _mm512_cvttps_epi32(q));
}

// ---------------------------------------------------------------------------------- GEMM --
// Unpacks channel blocks [nb, nb+NB) (all of K) into wbuf laid out [k/4][16*NB ch][4] u8.
template <int NB>
void expand_weight_panel(const PackedWeights& w, int64_t nb, uint8_t* wbuf) {
  const int bits = w.bits, P = codes_per_byte(bits);
  const __m512i mask = _mm512_set1_epi8(static_cast<char>(max_code(bits)));
  for (int64_t kb = 0; kb < w.k_blocks; ++kb) {
    for (int h = 0; h < NB; ++h) {
      const __m512i v = _mm512_load_si512(w.block(nb + h, kb));
      uint8_t* dst = wbuf + (kb * P * NB + h) * kBlockBytes;
      if (P == 1) {
        _mm512_store_si512(dst, v);
        continue;
      }
      for (int j = 0; j < P; ++j)  // 16-bit shifts leak neighbour bits; the byte mask drops them
        _mm512_store_si512(dst + j * NB * kBlockBytes,
                           _mm512_and_si512(_mm512_srli_epi16(v, bits * j), mask));
    }
  }
}

// MR rows x (16*NB) channels over the whole K (MR*NB = 16 accumulators: 8x32 for wide layers,
// 16x16 for 16-channel ones); a: MR rows of s8 (stride lda), wp: panel buffer [k/4][16*NB][4].
template <int MR, int NB>
void micro_kernel(const GemmProblem& p, const int8_t* a, int64_t lda, const uint8_t* wp,
                  int64_t groups, int64_t r0, int rows, int64_t nb) {
  static_assert(MR * NB == 16 && MR % 4 == 0);
  __m512i acc[MR * NB];
#pragma GCC unroll 16
  for (int i = 0; i < MR * NB; ++i) acc[i] = _mm512_setzero_si512();
  for (int64_t g = 0; g < groups; ++g) {
    __m512i wv[NB];
#pragma GCC unroll 2
    for (int b = 0; b < NB; ++b) wv[b] = _mm512_load_si512(wp + (g * NB + b) * kBlockBytes);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512i x = bcast_dword(a + r * lda + 4 * g);
#pragma GCC unroll 2
      for (int b = 0; b < NB; ++b) acc[r * NB + b] = _mm512_dpbusd_epi32(acc[r * NB + b], wv[b], x);
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR * NB; ++i) asm("" : "+v"(acc[i]));  // keep every accumulator in a zmm
  }
  // Constant trip counts only: a runtime index into acc[] would force it into memory (GCC then
  // shuffles every accumulator through the stack inside the K loop).
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) break;
    const RowEpi e = row_epilogue(p, r0 + r);
#pragma GCC unroll 2
    for (int b = 0; b < NB; ++b) epilogue16(p, e, r0 + r, nb + b, acc[r * NB + b]);
  }
}

}  // namespace

void gemm_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1) {
  const PackedActivations& A = *p.a;
  const PackedWeights& W = *p.w;
  const int64_t k_pad = W.k_pad, lda = expanded_row_stride(k_pad);
  const int64_t rows = m1 - m0, rows_pad = (rows + 15) / 16 * 16;
  auto* abuf = reinterpret_cast<int8_t*>(t_scratch.a(static_cast<size_t>(rows_pad * lda)));
  for (int64_t r = 0; r < rows; ++r) expand_activation_row(A.row(m0 + r), A.bits, k_pad, abuf + r * lda);
  // Padding rows compute garbage-free zeros and are never stored.
  std::memset(abuf + rows * lda, 0, static_cast<size_t>((rows_pad - rows) * lda));
  uint8_t* wbuf = t_scratch.w(static_cast<size_t>(2 * kBlockChannels * k_pad));
  const int64_t groups = k_pad / 4;
  for (int64_t nb = nb0; nb < nb1; nb += 2) {
    const bool two = nb + 1 < nb1;
    if (two) expand_weight_panel<2>(W, nb, wbuf);
    else expand_weight_panel<1>(W, nb, wbuf);
    const int64_t mr = two ? 8 : 16;
    for (int64_t r = 0; r < rows; r += mr) {
      const int nr = static_cast<int>(std::min<int64_t>(mr, rows - r));
      if (two) micro_kernel<8, 2>(p, abuf + r * lda, lda, wbuf, groups, m0 + r, nr, nb);
      else micro_kernel<16, 1>(p, abuf + r * lda, lda, wbuf, groups, m0 + r, nr, nb);
    }
  }
}

// ---------------------------------------------------------------------------------- GEMV --
namespace {

constexpr int floor_pow2(int x) { return x >= 8 ? 8 : x >= 4 ? 4 : x >= 2 ? 2 : 1; }
// Channel blocks per pass: at most 16 accumulators (ROWS x NB x fields) so all stay in zmm.
constexpr int gemv_nb(int wbits, int rows) { return floor_pow2(16 / (rows * codes_per_byte(wbits))); }

template <int WB, int ROWS, int NB>
void gemv_kernel(const GemmProblem& p, const int8_t* a, int64_t lda, int64_t m0, int64_t nb) {
  constexpr int P = 8 / WB;
  constexpr int BK = 4 * P;  // k-values per block
  constexpr int NACC = ROWS * NB * P;
  const PackedWeights& W = *p.w;
  const int64_t kblocks = W.k_blocks;
  const uint8_t* w0 = W.block(nb, 0);
  const int64_t wstride = W.k_blocks * kBlockBytes;  // bytes between channel blocks
  // One flat array indexed only by compile-time constants (index (r*NB + b)*P + j): GCC keeps
  // each element in its own zmm; multi-dimensional arrays of vectors made it shuffle copies.
  __m512i acc[NACC];
#pragma GCC unroll 16
  for (int i = 0; i < NACC; ++i) acc[i] = _mm512_setzero_si512();
  for (int64_t kb = 0; kb < kblocks; ++kb) {
    const uint8_t* wk = w0 + kb * kBlockBytes;
    const int8_t* ak = a + kb * BK;
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      __m512i v = _mm512_load_si512(wk + b * wstride);
      asm("" : "+v"(v));  // one load per block: GCC otherwise folds it into every field's vpandd
#pragma GCC unroll 4
      for (int j = 0; j < P; ++j) {
        const __m512i u =
            P == 1 ? v : _mm512_and_si512(v, _mm512_set1_epi8(static_cast<char>(((1 << WB) - 1) << (WB * j))));
#pragma GCC unroll 4
        for (int r = 0; r < ROWS; ++r)
          acc[(r * NB + b) * P + j] = _mm512_dpbusd_epi32(acc[(r * NB + b) * P + j], u, bcast_dword(ak + r * lda + 4 * j));
      }
    }
    // Empty asm pinning each accumulator to a zmm at the loop edge: without it GCC 12 copies
    // half of them to fresh registers and back on every iteration (seen in objdump -d).
#pragma GCC unroll 16
    for (int i = 0; i < NACC; ++i) asm("" : "+v"(acc[i]));
  }
#pragma GCC unroll 4
  for (int r = 0; r < ROWS; ++r) {
    const RowEpi e = row_epilogue(p, m0 + r);
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      __m512i s = acc[(r * NB + b) * P];
#pragma GCC unroll 4
      for (int j = 1; j < P; ++j) s = _mm512_add_epi32(s, _mm512_srai_epi32(acc[(r * NB + b) * P + j], WB * j));
      epilogue16(p, e, m0 + r, nb + b, s);
    }
  }
}

template <int WB, int ROWS>
void gemv_rows(const GemmProblem& p, const int8_t* a, int64_t lda, int64_t m0, int64_t nb0, int64_t nb1) {
  constexpr int NB = gemv_nb(WB, ROWS);
  int64_t nb = nb0;
  for (; nb + NB <= nb1; nb += NB) gemv_kernel<WB, ROWS, NB>(p, a, lda, m0, nb);
  for (; nb < nb1; ++nb) gemv_kernel<WB, ROWS, 1>(p, a, lda, m0, nb);
}

template <int WB>
void gemv_dispatch_rows(const GemmProblem& p, const int8_t* a, int64_t lda, int64_t m0, int rows,
                        int64_t nb0, int64_t nb1) {
  switch (rows) {
    case 1: gemv_rows<WB, 1>(p, a, lda, m0, nb0, nb1); break;
    case 2: gemv_rows<WB, 2>(p, a, lda, m0, nb0, nb1); break;
    case 3: gemv_rows<WB, 3>(p, a, lda, m0, nb0, nb1); break;
    default: gemv_rows<WB, 4>(p, a, lda, m0, nb0, nb1); break;
  }
}

}  // namespace

void gemv_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1) {
  const PackedActivations& A = *p.a;
  const int64_t k_pad = p.w->k_pad, lda = expanded_row_stride(k_pad);
  // Later row groups re-read this task's channel chunk (>= 256 KiB by the dispatcher's grain,
  // sized to stay in L2), so only the first group pays the memory stream.
  for (int64_t r0 = m0; r0 < m1; r0 += kGemvRowGroup) {
    const int rows = static_cast<int>(std::min<int64_t>(kGemvRowGroup, m1 - r0));
    auto* abuf = reinterpret_cast<int8_t*>(t_scratch.a(static_cast<size_t>(rows * lda)));
    for (int r = 0; r < rows; ++r) expand_activation_row(A.row(r0 + r), A.bits, k_pad, abuf + r * lda);
    switch (p.w->bits) {
      case 2: gemv_dispatch_rows<2>(p, abuf, lda, r0, rows, nb0, nb1); break;
      case 4: gemv_dispatch_rows<4>(p, abuf, lda, r0, rows, nb0, nb1); break;
      default: gemv_dispatch_rows<8>(p, abuf, lda, r0, rows, nb0, nb1); break;
    }
  }
}

double peak_probe(int64_t iters) {
  // One asm block so the 12 independent accumulators really live in zmm0..11 (an array of
  // __m512i with per-statement asm would round-trip through the stack and measure that instead).
  int64_t n = iters;
  asm volatile(
      "vpxord %%zmm30, %%zmm30, %%zmm30\n\t"
      "vpternlogd $0xff, %%zmm31, %%zmm31, %%zmm31\n\t"
      "1:\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm0\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm1\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm2\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm3\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm4\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm5\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm6\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm7\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm8\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm9\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm10\n\t"
      "vpdpbusd %%zmm30, %%zmm31, %%zmm11\n\t"
      "dec %0\n\t"
      "jnz 1b"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm30", "xmm31", "cc");
  return static_cast<double>(iters) * 12 * 64;
}

}  // namespace lowbit::kernels::detail::avx512
