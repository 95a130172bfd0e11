// gemm_avx2.cpp: AVX2 GEMM kernels for u2/u4/u8 weights x u2/u4/u8 activations.
// Compiled with -mavx2 -mfma only. Also serves few-row (GEMV) problems through the same tiles.
//
// Two micro-kernels, both 6 rows x 16 channels (12 ymm accumulators + 2 weight vectors + a
// broadcast + a product = all 16 ymm; 8 loads per 12 multiplies keeps the 2 vector loads/cycle
// of Zen 4/5 below the 2 multiplies/cycle), over K slices whose weight panel stays in L1:
//
// u8 x s8 (every pair but w8a8): vpmaddubsw multiplies unsigned bytes (weights, 0..255) by signed
// bytes (activations: the code for 2/4-bit, a - 128 for 8-bit) and adds adjacent pairs into
// int16 WITH SATURATION. Saturation is ruled out by construction, from the code ranges alone:
//   one pair      : |w0*a0 + w1*a1| <= 2 * wmax * amax_s          (amax_s = 128 for 8-bit a)
//   G pairs summed: G * 2 * wmax * amax_s <= 32767, G = kernel_group_steps(); e.g. w4a4: 450 ->
//                   G = 72, w4a8: 3840 -> G = 8, w8a4: 7650 -> G = 4.
// The int16 sums live in registers for G k-groups, then are widened exactly with
// vpmaddwd(x, 1) into int32 accumulators kept in L1 (one flush per G groups).
//
// w8a8 (2*255*128 = 65280 > 32767 can saturate a vpmaddubsw pair): weights are widened to
// int16 in the panel, activations to int16 (a - 128) in the row buffer, and vpmaddwd (exact
// int16 x int16 -> int32 pair sums) accumulates straight into int32. Same 16 MACs per multiply
// as a nibble split (w = 16 hi + lo, two vpmaddubsw per 32 MACs) but without its flushes.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "quant/kernels/gemm_internal.h"

namespace lowbit::kernels::detail::avx2 {
namespace {

#include "quant/kernels/expand_rows.inc"

constexpr int kRows = 6;  // rows per micro-kernel

struct Scratch {
  AlignedBytes abuf, wbuf, cbuf;
  uint8_t* c(size_t n) {
    if (cbuf.size() < n) cbuf = AlignedBytes(n);
    return cbuf.data();
  }
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
int kernel_group_steps(int wbits, int abits) {
  const int wmax = max_code(wbits);
  const int amax_s = abits == 8 ? 128 : max_code(abits);
  const int pair = 2 * wmax * amax_s;
  // A dword (4 k of one channel) feeds two int16 lanes, each gaining ONE pair per k-group.
  return std::min(kMaxGroupSteps, 32767 / pair);
}

inline __m256i bcast_dword(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Unpacks channel block nb (all of K) into wbuf as [k/4][16 ch][4] u8.
void expand_weight_block_u8(const PackedWeights& w, int64_t nb, uint8_t* wbuf) {
  const int bits = w.bits, P = codes_per_byte(bits);
  const __m256i mask = _mm256_set1_epi8(static_cast<char>(max_code(bits)));
  for (int64_t kb = 0; kb < w.k_blocks; ++kb) {
    const uint8_t* src = w.block(nb, kb);
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(src + 32 * h));
      for (int j = 0; j < P; ++j)  // 16-bit shifts leak neighbour bits; the byte mask drops them
        _mm256_store_si256(reinterpret_cast<__m256i*>(wbuf + (kb * P + j) * 64 + 32 * h),
                           P == 1 ? v : _mm256_and_si256(_mm256_srli_epi16(v, bits * j), mask));
    }
  }
}

// Unpacks 8-bit channel block nb into wbuf as [k/2][16 ch][2] int16 (128 bytes per 4 k).
void expand_weight_block_i16(const PackedWeights& w, int64_t nb, uint8_t* wbuf) {
  // Per 4-channel quarter: bytes [c][k0..k3] -> [c][k0,k1] then [c][k2,k3], zero-extended.
  const __m128i pairs = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  for (int64_t kb = 0; kb < w.k_blocks; ++kb) {
    const uint8_t* src = w.block(nb, kb);
    uint8_t* dst = wbuf + kb * 128;
    for (int q = 0; q < 4; ++q) {
      const __m128i v = _mm_shuffle_epi8(_mm_load_si128(reinterpret_cast<const __m128i*>(src + 16 * q)), pairs);
      const __m256i x = _mm256_cvtepu8_epi16(v);
      _mm_store_si128(reinterpret_cast<__m128i*>(dst + 16 * q), _mm256_castsi256_si128(x));
      _mm_store_si128(reinterpret_cast<__m128i*>(dst + 64 + 16 * q), _mm256_extracti128_si256(x, 1));
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

// One K chunk of a micro-kernel, added into int32 sums c32[2R][8] (L1): for g in [0, steps),
// with w = the 64 weight bytes at wp + 64 g and x_r = the dword at a + r*lda + 4 g,
//   s[2r] += mul(w[0:32], x_r),  s[2r+1] += mul(w[32:64], x_r)
// mul = vpmaddubsw then vpaddw (u8 x s8 -> int16, !WIDE; the chunk is <= G steps, so the
// int16 sums cannot saturate, then widened exactly by vpmaddwd(s, 1)) or vpmaddwd then vpaddd
// (int16 x int16 -> int32, WIDE). Five or six rows run as one asm loop with the 12 sums in
// ymm0..11 and the 2 weights, broadcast and product in ymm12..15: GCC 12 spilled the
// intrinsics version of this loop to the stack (seen in objdump -d). A fifth row computes a
// sixth from the padding row of the buffer and discards it. Up to 4 rows, intrinsics keep
// everything in registers.
#define LOWBIT_AVX2_ROW(ADDR, MUL, ADD, A, B)                                              \
  "vpbroadcastd " ADDR ", %%ymm14\n\t" MUL " %%ymm14, %%ymm12, %%ymm15\n\t" MUL            \
  " %%ymm14, %%ymm13, %%ymm14\n\t" ADD " %%ymm15, %%ymm" A ", %%ymm" A "\n\t" ADD          \
  " %%ymm14, %%ymm" B ", %%ymm" B "\n\t"
#define LOWBIT_AVX2_ADD_STORE(i) \
  "vpaddd " #i "*32(%[c]), %%ymm" #i ", %%ymm" #i "\n\tvmovdqa %%ymm" #i ", " #i "*32(%[c])\n\t"
#define LOWBIT_AVX2_FLUSH_I32(i) LOWBIT_AVX2_ADD_STORE(i)
#define LOWBIT_AVX2_FLUSH_I16(i) "vpmaddwd %%ymm12, %%ymm" #i ", %%ymm" #i "\n\t" LOWBIT_AVX2_ADD_STORE(i)
#define LOWBIT_AVX2_CHUNK(MUL, ADD, FLUSH)                                                      \
  asm volatile(                                                                            \
      "vpxor %%xmm0, %%xmm0, %%xmm0\n\tvmovdqa %%ymm0, %%ymm1\n\tvmovdqa %%ymm0, %%ymm2\n\t"    \
      "vmovdqa %%ymm0, %%ymm3\n\tvmovdqa %%ymm0, %%ymm4\n\tvmovdqa %%ymm0, %%ymm5\n\t"         \
      "vmovdqa %%ymm0, %%ymm6\n\tvmovdqa %%ymm0, %%ymm7\n\tvmovdqa %%ymm0, %%ymm8\n\t"         \
      "vmovdqa %%ymm0, %%ymm9\n\tvmovdqa %%ymm0, %%ymm10\n\tvmovdqa %%ymm0, %%ymm11\n\t"       \
      "1:\n\t"                                                                             \
      "vmovdqa (%[wp]), %%ymm12\n\t"                                                       \
      "vmovdqa 32(%[wp]), %%ymm13\n\t"                                                     \
      LOWBIT_AVX2_ROW("(%[a0])", MUL, ADD, "0", "1")                                       \
      LOWBIT_AVX2_ROW("(%[a0],%[lda],1)", MUL, ADD, "2", "3")                              \
      LOWBIT_AVX2_ROW("(%[a0],%[lda],2)", MUL, ADD, "4", "5")                              \
      LOWBIT_AVX2_ROW("(%[a3])", MUL, ADD, "6", "7")                                       \
      LOWBIT_AVX2_ROW("(%[a3],%[lda],1)", MUL, ADD, "8", "9")                              \
      LOWBIT_AVX2_ROW("(%[a3],%[lda],2)", MUL, ADD, "10", "11")                            \
      "add $64, %[wp]\n\t"                                                                 \
      "add $4, %[a0]\n\t"                                                                  \
      "add $4, %[a3]\n\t"                                                                  \
      "dec %[n]\n\t"                                                                       \
      "jnz 1b\n\t"                                                                         \
      "vpcmpeqw %%ymm12, %%ymm12, %%ymm12\n\tvpsrlw $15, %%ymm12, %%ymm12\n\t" /* int16 1s */ \
      FLUSH(0) FLUSH(1) FLUSH(2)                 \
      FLUSH(3) FLUSH(4) FLUSH(5)                 \
      FLUSH(6) FLUSH(7) FLUSH(8)                 \
      FLUSH(9) FLUSH(10) FLUSH(11)               \
      : [wp] "+r"(wp), [a0] "+r"(a0), [a3] "+r"(a3), [n] "+r"(n)                           \
      : [lda] "r"(lda), [c] "r"(c32)                                                       \
      : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",    \
        "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15")

template <int R, bool WIDE>
inline void k_chunk(int32_t (*c32)[8], const uint8_t* a, int64_t lda, const uint8_t* wp, int64_t steps) {
  static_assert(R >= 1 && R <= kRows);
  if (steps <= 0) return;
  if constexpr (R >= 5) {
    const uint8_t* a0 = a;
    const uint8_t* a3 = a + 3 * lda;
    int64_t n = steps;
    if constexpr (WIDE) LOWBIT_AVX2_CHUNK("vpmaddwd", "vpaddd", LOWBIT_AVX2_FLUSH_I32);
    else LOWBIT_AVX2_CHUNK("vpmaddubsw", "vpaddw", LOWBIT_AVX2_FLUSH_I16);
  } else {
    __m256i s[2 * R];
#pragma GCC unroll 8
    for (int i = 0; i < 2 * R; ++i) s[i] = _mm256_setzero_si256();
    for (int64_t g = 0; g < steps; ++g) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + g * 64));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + g * 64 + 32));
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256i x = bcast_dword(a + r * lda + 4 * g);
        if constexpr (WIDE) {
          s[2 * r] = _mm256_add_epi32(s[2 * r], _mm256_madd_epi16(w0, x));
          s[2 * r + 1] = _mm256_add_epi32(s[2 * r + 1], _mm256_madd_epi16(w1, x));
        } else {
          s[2 * r] = _mm256_add_epi16(s[2 * r], _mm256_maddubs_epi16(w0, x));
          s[2 * r + 1] = _mm256_add_epi16(s[2 * r + 1], _mm256_maddubs_epi16(w1, x));
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 2 * R; ++i) {
      __m256i* c = reinterpret_cast<__m256i*>(c32[i]);
      const __m256i v = WIDE ? s[i] : _mm256_madd_epi16(s[i], _mm256_set1_epi16(1));
      _mm256_store_si256(c, _mm256_add_epi32(_mm256_load_si256(c), v));
    }
  }
}
#undef LOWBIT_AVX2_CHUNK
#undef LOWBIT_AVX2_FLUSH_I16
#undef LOWBIT_AVX2_FLUSH_I32
#undef LOWBIT_AVX2_ADD_STORE
#undef LOWBIT_AVX2_ROW

// R (<= 6) rows x 16 channels, `steps` k-steps added into c32[2R][8]. !WIDE: u8 weights
// [k/4][16][4] x s8 activations, in chunks of gsteps k-groups. WIDE: int16 weights [k/2][16][2] x
// int16 activations. Activation rows are lda bytes apart; a sixth (padding) row must be
// readable when R == 5.
template <int R, bool WIDE>
void micro_kernel(const uint8_t* a, int64_t lda, const uint8_t* wp, int64_t steps, int64_t gsteps,
                  int32_t (*c32)[8]) {
  for (int64_t g0 = 0; g0 < steps; g0 += gsteps)
    k_chunk<R, WIDE>(c32, a + 4 * g0, lda, wp + 64 * g0, std::min(gsteps, steps - g0));
}

// Calls f(std::integral_constant<int, R>) with R = min(left, kRows): full micro-kernels, then
// one narrower kernel for the remainder (no padding rows computed).
template <class F>
void for_rows(int64_t left, F&& f) {
  switch (std::min<int64_t>(left, kRows)) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    default: f(std::integral_constant<int, 6>{}); break;
  }
}

}  // namespace

void gemm_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1) {
  const PackedActivations& A = *p.a;
  const PackedWeights& W = *p.w;
  const bool wide = W.bits == 8 && A.bits == 8;
  const int64_t k_pad = W.k_pad, lda = expanded_row_stride(k_pad);
  const int64_t rows = m1 - m0, rows_pad = (rows + kRows - 1) / kRows * kRows;
  // Rows padded to a multiple of kRows (see micro_kernel); padding content is never stored.
  auto* abuf = reinterpret_cast<int8_t*>(t_scratch.a(static_cast<size_t>(rows_pad * lda * (wide ? 3 : 1))));
  for (int64_t r = 0; r < rows; ++r) expand_activation_row(A.row(m0 + r), A.bits, k_pad, abuf + r * lda);
  uint8_t* wbuf = t_scratch.w(static_cast<size_t>(2 * kBlockChannels * k_pad));
  const uint8_t* arows = reinterpret_cast<const uint8_t*>(abuf);
  int64_t stride = lda, steps = k_pad / 4, gsteps = kernel_group_steps(W.bits, A.bits);
  if (wide) {
    // int16 copy of the s8 rows, after them in the same buffer (row stride 2*lda bytes).
    auto* a16 = reinterpret_cast<int16_t*>(abuf + rows_pad * lda);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < k_pad; t += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(a16 + r * lda + t),
                            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(abuf + r * lda + t))));
    arows = reinterpret_cast<const uint8_t*>(a16);
    stride = 2 * lda;
    steps = k_pad / 2;
    gsteps = steps;
  }
  // int32 sums of every row of the tile for one channel block, accumulated over K chunks of
  // kKStepsL1 steps (a 16 KiB slice of the weight panel, reused from L1 by every row block).
  constexpr int64_t kKStepsL1 = 256;
  auto* c32 = reinterpret_cast<int32_t(*)[8]>(t_scratch.c(static_cast<size_t>(rows_pad * 2 * 8 * 4)));
  for (int64_t nb = nb0; nb < nb1; ++nb) {
    if (wide) expand_weight_block_i16(W, nb, wbuf);
    else expand_weight_block_u8(W, nb, wbuf);
    std::memset(c32, 0, static_cast<size_t>(rows_pad * 2 * 8 * 4));
    for (int64_t s0 = 0; s0 < steps; s0 += kKStepsL1) {
      const int64_t n = std::min(kKStepsL1, steps - s0);
      for (int64_t r = 0; r < rows; r += kRows)
        for_rows(rows - r, [&](auto R) {
          const uint8_t* ar = arows + r * stride + 4 * s0;
          if (wide) micro_kernel<R, true>(ar, stride, wbuf + 64 * s0, n, gsteps, c32 + 2 * r);
          else micro_kernel<R, false>(ar, stride, wbuf + 64 * s0, n, gsteps, c32 + 2 * r);
        });
    }
    for (int64_t r = 0; r < rows; ++r) {
      const auto* c = reinterpret_cast<const __m256i*>(c32 + 2 * r);
      epilogue8(p, m0 + r, nb * kBlockChannels, _mm256_load_si256(c));
      epilogue8(p, m0 + r, nb * kBlockChannels + 8, _mm256_load_si256(c + 1));
    }
  }
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
