// gemm_avx2.cpp: AVX2 GEMM kernels for u2/u4/u8 weights x u2/u4/u8 activations.
// Compiled with -mavx2 -mfma only. Also serves few-row (GEMV) problems through the same tiles.
//
// Two micro-kernels, both 6 rows x 16 channels (12 ymm accumulators + 2 weight vectors + a
// broadcast + a product = all 16 ymm; 8 loads per 12 multiplies keeps the 2 vector loads/cycle
// of Zen 4/5 below the 2 multiplies/cycle), over K slices whose weight panel stays in L1 (the
// tile around them is gemm_ymm_tile.inc, shared with the AVX-VNNI kernels of gemm_avxvnni.cpp):
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
#include "quant/kernels/gemm_ymm_tile.inc"

constexpr int kMaxGroupSteps = 256;
// k-groups (of 4 k) whose int16 pair sums may be added before widening (see file comment).
int kernel_group_steps(int wbits, int abits) {
  const int wmax = max_code(wbits);
  const int amax_s = abits == 8 ? 128 : max_code(abits);
  const int pair = 2 * wmax * amax_s;
  // A dword (4 k of one channel) feeds two int16 lanes, each gaining ONE pair per k-group.
  return std::min(kMaxGroupSteps, 32767 / pair);
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

// One K chunk of a micro-kernel, added into int32 sums c32[2R][8] (L1): for g in [0, steps),
// with w = the 64 weight bytes at wp + 64 g and x_r = the dword at a + r*lda + 4 g,
//   s[2r] += mul(w[0:32], x_r),  s[2r+1] += mul(w[32:64], x_r)
// mul = vpmaddubsw then vpaddw (u8 x s8 -> int16, !WIDE; the chunk is <= G steps, so the
// int16 sums cannot saturate, then widened exactly by vpmaddwd(s, 1)) or vpmaddwd then vpaddd
// (int16 x int16 -> int32, WIDE). Five or six rows run as LOWBIT_YMM_CHUNK (a fifth row
// computes a sixth from the padding row of the buffer and discards it); up to 4 rows,
// few_rows_chunk.
#define LOWBIT_AVX2_ROW(ADDR, MUL, ADD, A, B)                                              \
  "vpbroadcastd " ADDR ", %%ymm14\n\t" MUL " %%ymm14, %%ymm12, %%ymm15\n\t" MUL            \
  " %%ymm14, %%ymm13, %%ymm14\n\t" ADD " %%ymm15, %%ymm" A ", %%ymm" A "\n\t" ADD          \
  " %%ymm14, %%ymm" B ", %%ymm" B "\n\t"
#define LOWBIT_AVX2_ROW_U8(ADDR, A, B) LOWBIT_AVX2_ROW(ADDR, "vpmaddubsw", "vpaddw", A, B)
#define LOWBIT_AVX2_ROW_I16(ADDR, A, B) LOWBIT_AVX2_ROW(ADDR, "vpmaddwd", "vpaddd", A, B)
#define LOWBIT_AVX2_INT16_ONES "vpcmpeqw %%ymm12, %%ymm12, %%ymm12\n\tvpsrlw $15, %%ymm12, %%ymm12\n\t"
#define LOWBIT_AVX2_FLUSH_I16(i) "vpmaddwd %%ymm12, %%ymm" #i ", %%ymm" #i "\n\t" LOWBIT_YMM_ADD_STORE(i)

// Up to 4 rows: intrinsics. Not inlined into the tile, and each sum pinned to one ymm: else
// GCC 12 rotates the sums through other registers and keeps one on the stack on every k-step
// (seen in objdump -d).
template <int R, bool WIDE>
__attribute__((noinline)) void few_rows_chunk(int32_t (*c32)[8], const uint8_t* a, int64_t lda, const uint8_t* wp,
                                              int64_t steps) {
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
      asm("" : "+x"(s[2 * r]), "+x"(s[2 * r + 1]));
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < 2 * R; ++i) {
    __m256i* c = reinterpret_cast<__m256i*>(c32[i]);
    const __m256i v = WIDE ? s[i] : _mm256_madd_epi16(s[i], _mm256_set1_epi16(1));
    _mm256_store_si256(c, _mm256_add_epi32(_mm256_load_si256(c), v));
  }
}

template <int R, bool WIDE>
inline void k_chunk(int32_t (*c32)[8], const uint8_t* a, int64_t lda, const uint8_t* wp, int64_t steps) {
  static_assert(R >= 1 && R <= kRows);
  if (steps <= 0) return;
  if constexpr (R >= 5) {
    const uint8_t* a0 = a;
    const uint8_t* a3 = a + 3 * lda;
    int64_t n = steps;
    if constexpr (WIDE) LOWBIT_YMM_CHUNK(LOWBIT_AVX2_ROW_I16, "", LOWBIT_YMM_ADD_STORE);
    else LOWBIT_YMM_CHUNK(LOWBIT_AVX2_ROW_U8, LOWBIT_AVX2_INT16_ONES, LOWBIT_AVX2_FLUSH_I16);
  } else {
    few_rows_chunk<R, WIDE>(c32, a, lda, wp, steps);
  }
}
#undef LOWBIT_AVX2_FLUSH_I16
#undef LOWBIT_AVX2_INT16_ONES
#undef LOWBIT_AVX2_ROW_I16
#undef LOWBIT_AVX2_ROW_U8
#undef LOWBIT_AVX2_ROW
#undef LOWBIT_YMM_CHUNK
#undef LOWBIT_YMM_ADD_STORE

// u8 weights x s8 activations through vpmaddubsw, flushed every kernel_group_steps k-groups.
struct U8Kernel {
  static constexpr bool kInt16 = false;
  static void expand_weights(const PackedWeights& w, int64_t nb, uint8_t* wbuf) { expand_weight_block_u8(w, nb, wbuf); }
  static int64_t group_steps(int wbits, int abits) { return kernel_group_steps(wbits, abits); }
  template <int R>
  static void chunk(int32_t (*c32)[8], const uint8_t* a, int64_t lda, const uint8_t* wp, int64_t steps) {
    k_chunk<R, false>(c32, a, lda, wp, steps);
  }
};

// w8a8: int16 weights x int16 activations through vpmaddwd, exact in int32 (no flush groups).
struct Int16Kernel {
  static constexpr bool kInt16 = true;
  static void expand_weights(const PackedWeights& w, int64_t nb, uint8_t* wbuf) { expand_weight_block_i16(w, nb, wbuf); }
  static int64_t group_steps(int, int) { return kKStepsL1; }
  template <int R>
  static void chunk(int32_t (*c32)[8], const uint8_t* a, int64_t lda, const uint8_t* wp, int64_t steps) {
    k_chunk<R, true>(c32, a, lda, wp, steps);
  }
};

}  // namespace

void gemm_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1) {
  if (p.w->bits == 8 && p.a->bits == 8) ymm_gemm_tile<Int16Kernel>(p, m0, m1, nb0, nb1);
  else ymm_gemm_tile<U8Kernel>(p, m0, m1, nb0, nb1);
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
