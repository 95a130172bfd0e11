// gemm_avx2.cpp: AVX2 (vpmaddubsw) GEMM kernels for u2/u4/u8 weights x u2/u4/u8 activations.
// Compiled with -mavx2 -mfma only. Also serves few-row (GEMV) problems through the same tiles.
//
// vpmaddubsw multiplies unsigned bytes (weights, 0..255) by signed bytes (activations: the code
// for 2/4-bit, a - 128 for 8-bit) and adds adjacent pairs into int16 WITH SATURATION. Saturation
// is ruled out by construction, from the code ranges alone (never from the data):
//   one pair      : |w0*a0 + w1*a1| <= 2 * wmax * amax_s          (amax_s = 128 for 8-bit a)
//   G pairs summed: G * 2 * wmax * amax_s <= 32767, G = kernel_group_steps(); e.g. w4a4: 450 ->
//                   G = 72, w4a8: 3840 -> G = 8, w8a4: 7650 -> G = 4.
// After G k-groups the int16 sums are widened with vpmaddwd(x, 1) (exact) into int32.
// 8-bit x 8-bit is the one pair that can saturate (2*255*128 = 65280 > 32767), so there the
// weights are split into nibbles w = 16*hi + lo at unpack time (each <= 15: pair <= 3840, G = 8)
// and combined exactly by vpmaddwd(lo16, 1) + vpmaddwd(hi16, 16).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "quant/kernels/gemm_internal.h"

namespace lowbit::kernels::detail::avx2 {
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

constexpr int kMaxGroupSteps = 256;
// k-groups (of 4 k) whose int16 pair sums may be added before widening (see file comment).
int kernel_group_steps(int wbits, int abits, bool split) {
  const int wmax = split ? 15 : max_code(wbits);
  const int amax_s = abits == 8 ? 128 : max_code(abits);
  const int pair = 2 * wmax * amax_s;
  // A dword (4 k of one channel) feeds two int16 lanes, each gaining ONE pair per k-group.
  return std::min(kMaxGroupSteps, 32767 / pair);
}

inline __m256i bcast_dword(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Unpacks channel block nb (all of K) into wbuf as [k/4][16 ch][4] u8, or for SPLIT as
// [k/4][lo|hi][16 ch][4] nibbles of 8-bit codes.
template <bool SPLIT>
void expand_weight_block(const PackedWeights& w, int64_t nb, uint8_t* wbuf) {
  const int bits = w.bits, P = codes_per_byte(bits);
  const __m256i mask = _mm256_set1_epi8(static_cast<char>(max_code(bits)));
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t kb = 0; kb < w.k_blocks; ++kb) {
    const uint8_t* src = w.block(nb, kb);
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(src + 32 * h));
      if (SPLIT) {
        uint8_t* dst = wbuf + kb * 128 + 32 * h;
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst), _mm256_and_si256(v, m4));
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 64),
                           _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
      } else {
        for (int j = 0; j < P; ++j)
          _mm256_store_si256(reinterpret_cast<__m256i*>(wbuf + (kb * P + j) * 64 + 32 * h),
                             P == 1 ? v : _mm256_and_si256(_mm256_srli_epi16(v, bits * j), mask));
      }
    }
  }
}

// Epilogue for row r, channels [8*c8 ...) of block nb; same operations as ref::epilogue_block.
inline void epilogue8(const GemmProblem& p, int64_t r, int64_t n0, __m256i acc) {
  const int64_t valid = std::min<int64_t>(8, p.w->n - n0);
  if (valid <= 0) return;
  acc = _mm256_add_epi32(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.channel_corr + n0)));
  if (p.ep.acc_mul != 1 || p.ep.rowsum_mul != 0) {
    const uint32_t rs = static_cast<uint32_t>(p.a->row_sums[static_cast<size_t>(r)]);
    acc = _mm256_add_epi32(_mm256_mullo_epi32(acc, _mm256_set1_epi32(p.ep.acc_mul)),
                           _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(p.ep.rowsum_mul) * rs)));
  }
  const int64_t off = r * p.ldo + n0;
  alignas(32) int32_t tmp[8];
  if (p.ep.kind == EpilogueKind::int32) {
    if (valid == 8) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<int32_t*>(p.out) + off), acc);
    } else {
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc);
      std::memcpy(static_cast<int32_t*>(p.out) + off, tmp, static_cast<size_t>(valid) * 4);
    }
    return;
  }
  const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_loadu_ps(p.scale_pad + n0));
  const __m256 y = _mm256_add_ps(t, _mm256_loadu_ps(p.bias_pad + n0));
  if (p.ep.kind == EpilogueKind::float32) {
    if (valid == 8) {
      _mm256_storeu_ps(static_cast<float*>(p.out) + off, y);
    } else {
      alignas(32) float f[8];
      _mm256_store_ps(f, y);
      std::memcpy(static_cast<float*>(p.out) + off, f, static_cast<size_t>(valid) * 4);
    }
    return;
  }
  __m256 q = _mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  q = _mm256_max_ps(q, _mm256_setzero_ps());
  q = _mm256_min_ps(q, _mm256_set1_ps(static_cast<float>(p.ep.max_code_out)));
  _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), _mm256_cvttps_epi32(q));
  uint8_t* o = static_cast<uint8_t*>(p.out) + off;
  for (int64_t c = 0; c < valid; ++c) o[c] = static_cast<uint8_t>(tmp[c]);
}

// 2 rows x 16 channels (2 ymm) over the whole K, written out by hand: 4 int32 + 4 int16
// accumulators, 2 weights, 2 broadcasts, 1 constant = 13 of 16 ymm, no spills (GCC 12 kept
// array-of-vector versions of this loop on the stack).
void micro_kernel_2x16(const GemmProblem& p, const int8_t* a, int64_t lda, const uint8_t* wp,
                       int64_t groups, int gsteps, int64_t r0, int rows, int64_t nb) {
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* a1 = a + lda;
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00;
  for (int64_t g0 = 0; g0 < groups; g0 += gsteps) {
    const int64_t g1 = std::min<int64_t>(groups, g0 + gsteps);
    __m256i s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00;
    for (int64_t g = g0; g < g1; ++g) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + g * 64));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + g * 64 + 32));
      const __m256i x0 = bcast_dword(a + 4 * g), x1 = bcast_dword(a1 + 4 * g);
      s00 = _mm256_add_epi16(s00, _mm256_maddubs_epi16(w0, x0));
      s01 = _mm256_add_epi16(s01, _mm256_maddubs_epi16(w1, x0));
      s10 = _mm256_add_epi16(s10, _mm256_maddubs_epi16(w0, x1));
      s11 = _mm256_add_epi16(s11, _mm256_maddubs_epi16(w1, x1));
      asm("" : "+x"(s00), "+x"(s01), "+x"(s10), "+x"(s11));  // GCC 12: avoid per-iteration copies
    }
    c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(s00, ones));
    c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(s01, ones));
    c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(s10, ones));
    c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(s11, ones));
  }
  const int64_t n0 = nb * kBlockChannels;
  epilogue8(p, r0, n0, c00);
  epilogue8(p, r0, n0 + 8, c01);
  if (rows > 1) {
    epilogue8(p, r0 + 1, n0, c10);
    epilogue8(p, r0 + 1, n0 + 8, c11);
  }
}

// 8-bit x 8-bit: 1 row x 16 channels on nibble-split weights ([k/4][lo|hi][16][4]);
// acc = madd(lo16, 1) + madd(hi16, 16) is exactly sum (lo + 16 hi) * a.
void micro_kernel_1x16_split(const GemmProblem& p, const int8_t* a, int64_t, const uint8_t* wp,
                             int64_t groups, int gsteps, int64_t r0, int, int64_t nb) {
  const __m256i ones = _mm256_set1_epi16(1), sixteen = _mm256_set1_epi16(16);
  __m256i c0 = _mm256_setzero_si256(), c1 = c0;
  for (int64_t g0 = 0; g0 < groups; g0 += gsteps) {
    const int64_t g1 = std::min<int64_t>(groups, g0 + gsteps);
    __m256i l0 = _mm256_setzero_si256(), l1 = l0, h0 = l0, h1 = l0;
    for (int64_t g = g0; g < g1; ++g) {
      const uint8_t* wg = wp + g * 128;
      const __m256i x = bcast_dword(a + 4 * g);
      l0 = _mm256_add_epi16(l0, _mm256_maddubs_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(wg)), x));
      l1 = _mm256_add_epi16(l1, _mm256_maddubs_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(wg + 32)), x));
      h0 = _mm256_add_epi16(h0, _mm256_maddubs_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(wg + 64)), x));
      h1 = _mm256_add_epi16(h1, _mm256_maddubs_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(wg + 96)), x));
      asm("" : "+x"(l0), "+x"(l1), "+x"(h0), "+x"(h1));  // GCC 12: avoid per-iteration copies
    }
    c0 = _mm256_add_epi32(c0, _mm256_add_epi32(_mm256_madd_epi16(l0, ones), _mm256_madd_epi16(h0, sixteen)));
    c1 = _mm256_add_epi32(c1, _mm256_add_epi32(_mm256_madd_epi16(l1, ones), _mm256_madd_epi16(h1, sixteen)));
  }
  epilogue8(p, r0, nb * kBlockChannels, c0);
  epilogue8(p, r0, nb * kBlockChannels + 8, c1);
}

template <int MR, bool SPLIT>
void run_panels(const GemmProblem& p, const int8_t* abuf, int64_t lda, int64_t rows, int64_t m0,
                int64_t nb0, int64_t nb1, uint8_t* wbuf, int gsteps) {
  const int64_t groups = p.w->k_pad / 4;
  for (int64_t nb = nb0; nb < nb1; ++nb) {
    expand_weight_block<SPLIT>(*p.w, nb, wbuf);
    for (int64_t r = 0; r < rows; r += MR) {
      const int nr = static_cast<int>(std::min<int64_t>(MR, rows - r));
      if (SPLIT) micro_kernel_1x16_split(p, abuf + r * lda, lda, wbuf, groups, gsteps, m0 + r, nr, nb);
      else micro_kernel_2x16(p, abuf + r * lda, lda, wbuf, groups, gsteps, m0 + r, nr, nb);
    }
  }
}

}  // namespace

void gemm_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1) {
  const PackedActivations& A = *p.a;
  const PackedWeights& W = *p.w;
  const bool split = W.bits == 8 && A.bits == 8;
  const int gsteps = kernel_group_steps(W.bits, A.bits, split);
  const int mr = split ? 1 : 2;
  const int64_t k_pad = W.k_pad, lda = expanded_row_stride(k_pad);
  const int64_t rows = m1 - m0, rows_pad = (rows + mr - 1) / mr * mr;
  auto* abuf = reinterpret_cast<int8_t*>(t_scratch.a(static_cast<size_t>(rows_pad * lda)));
  for (int64_t r = 0; r < rows; ++r) expand_activation_row(A.row(m0 + r), A.bits, k_pad, abuf + r * lda);
  std::memset(abuf + rows * lda, 0, static_cast<size_t>((rows_pad - rows) * lda));
  uint8_t* wbuf = t_scratch.w(static_cast<size_t>(2 * kBlockChannels * k_pad));
  if (split) run_panels<1, true>(p, abuf, lda, rows, m0, nb0, nb1, wbuf, gsteps);
  else run_panels<2, false>(p, abuf, lda, rows, m0, nb0, nb1, wbuf, gsteps);
}

double peak_probe(int64_t iters) {
  // The 32 MAC/cycle AVX2 peak (Zen 4): per 32 MACs one vpmaddubsw + one vpmaddwd (+ vpaddd);
  // 8 independent accumulators ymm0..7, all in one asm block (see the AVX-512 probe).
  int64_t n = iters;
  asm volatile(
      "vpcmpeqd %%ymm12, %%ymm12, %%ymm12\n\t"
      "vpabsb %%ymm12, %%ymm13\n\t"
      "vpabsw %%ymm12, %%ymm14\n\t"
      "1:\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm8\n\t"
      "vpmaddwd %%ymm14, %%ymm8, %%ymm8\n\t"
      "vpaddd %%ymm8, %%ymm0, %%ymm0\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm9\n\t"
      "vpmaddwd %%ymm14, %%ymm9, %%ymm9\n\t"
      "vpaddd %%ymm9, %%ymm1, %%ymm1\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm10\n\t"
      "vpmaddwd %%ymm14, %%ymm10, %%ymm10\n\t"
      "vpaddd %%ymm10, %%ymm2, %%ymm2\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm11\n\t"
      "vpmaddwd %%ymm14, %%ymm11, %%ymm11\n\t"
      "vpaddd %%ymm11, %%ymm3, %%ymm3\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm8\n\t"
      "vpmaddwd %%ymm14, %%ymm8, %%ymm8\n\t"
      "vpaddd %%ymm8, %%ymm4, %%ymm4\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm9\n\t"
      "vpmaddwd %%ymm14, %%ymm9, %%ymm9\n\t"
      "vpaddd %%ymm9, %%ymm5, %%ymm5\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm10\n\t"
      "vpmaddwd %%ymm14, %%ymm10, %%ymm10\n\t"
      "vpaddd %%ymm10, %%ymm6, %%ymm6\n\t"
      "vpmaddubsw %%ymm13, %%ymm12, %%ymm11\n\t"
      "vpmaddwd %%ymm14, %%ymm11, %%ymm11\n\t"
      "vpaddd %%ymm11, %%ymm7, %%ymm7\n\t"
      "dec %0\n\t"
      "jnz 1b"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm12", "xmm13", "xmm14", "cc");
  return static_cast<double>(iters) * 8 * 32;
}

}  // namespace lowbit::kernels::detail::avx2
