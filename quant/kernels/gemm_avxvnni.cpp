// gemm_avxvnni.cpp: AVX-VNNI (VEX-encoded ymm vpdpbusd) GEMM kernels for u2/u4/u8 weights x
// u2/u4/u8 activations, for CPUs with AVX-VNNI but no AVX-512 (Alder Lake and later; also runs
// on Sapphire Rapids / Zen 5 when LOWBIT_ISA=avx_vnni asks). Compiled with -mavx2 -mfma
// -mavxvnni only. Also serves few-row (GEMV) problems through the same tiles.
//
// The tile is the AVX2 one (gemm_ymm_tile.inc: 6 rows x 16 channels, 12 ymm accumulators, the
// weight panel of one block in L1); only the multiply-accumulate differs. vpdpbusd multiplies
// UNSIGNED bytes (weights, 0..255, the u8 panel [k/4][16][4]) by SIGNED bytes (activations: the
// code for 2/4-bit, a - 128 for 8-bit; gemm.cpp adds back 128 * sum_k W[n][k] as channel_corr)
// and adds each group of 4 products into an int32 lane WITHOUT saturation: one instruction per
// 32 MACs (AVX2: vpmaddubsw + vpaddw, plus int16 flush groups; vpmaddwd on int16 for w8a8).
// So every bit pair, w8a8 included, uses the same u8 x s8 kernel, and a chunk sums a whole K
// slice in registers; nothing wraps, as |w * (a - 128)| <= 255 * 128 keeps every partial sum
// inside gemm_k_limit's bound (K * 255 * 255 < 2^31).
// The asm uses the {vex} pseudo-prefix: without it the assembler picks the EVEX (AVX-512 VNNI)
// encoding of vpdpbusd, which CPUs without AVX-512 reject.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "quant/kernels/gemm_internal.h"

namespace lowbit::kernels::detail::avx_vnni {
namespace {

#include "quant/kernels/expand_rows.inc"
#include "quant/kernels/gemm_ymm_tile.inc"

// Per row: broadcast x_r, then s[A] += dot4(w[0:32], x_r), s[B] += dot4(w[32:64], x_r).
#define LOWBIT_VNNI_ROW(ADDR, A, B)                          \
  "vpbroadcastd " ADDR ", %%ymm14\n\t"                       \
  "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm" A "\n\t"        \
  "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm" B "\n\t"

// Up to 4 rows: intrinsics. vpdpbusd adds into its own accumulator (about 5 cycles of latency at
// 2 per cycle), so 2R sums alone would leave the multipliers idle for few rows (one row: 2 per
// 5 cycles). U = 6 / R sets of 2R sums therefore take consecutive k-steps in turn and are added
// up at the end (12 sums + 2 weights + a broadcast for R <= 3, 8 + 3 for R = 4); int32 addition
// is exact in any order. Not inlined into the tile, each sum pinned to one ymm: inlined, GCC 12
// rotated the sums through other registers and the stack on every step (seen in objdump -d).
template <int R>
__attribute__((noinline)) void few_rows_chunk(int32_t (*c32)[8], const uint8_t* a, int64_t lda, const uint8_t* wp,
                                              int64_t steps) {
  constexpr int U = 6 / R;
  __m256i s[2 * R * U];
#pragma GCC unroll 12
  for (int i = 0; i < 2 * R * U; ++i) s[i] = _mm256_setzero_si256();
  // k-step g into set u: s[2(uR + r)] += dot4(w[0:32], x_r), s[2(uR + r) + 1] += dot4(w[32:64], x_r).
  auto step = [&](int64_t g, int u) __attribute__((always_inline)) {
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + g * 64));
    const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + g * 64 + 32));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256i x = bcast_dword(a + r * lda + 4 * g);
      __m256i& lo = s[2 * (u * R + r)];
      __m256i& hi = s[2 * (u * R + r) + 1];
      lo = _mm256_dpbusd_avx_epi32(lo, w0, x);
      hi = _mm256_dpbusd_avx_epi32(hi, w1, x);
      asm("" : "+x"(lo), "+x"(hi));
    }
  };
  int64_t g = 0;
  for (; g + U <= steps; g += U) {
#pragma GCC unroll 6
    for (int u = 0; u < U; ++u) step(g + u, u);
  }
  for (; g < steps; ++g) step(g, 0);
#pragma GCC unroll 8
  for (int i = 0; i < 2 * R; ++i) {
    __m256i v = s[i];
#pragma GCC unroll 6
    for (int u = 1; u < U; ++u) v = _mm256_add_epi32(v, s[2 * R * u + i]);
    __m256i* c = reinterpret_cast<__m256i*>(c32[i]);
    _mm256_store_si256(c, _mm256_add_epi32(_mm256_load_si256(c), v));
  }
}

// u8 weights x s8 activations, exact int32 sums (no flush groups): a chunk is a whole K slice.
struct DpbusdKernel {
  static constexpr bool kInt16 = false;
  static void expand_weights(const PackedWeights& w, int64_t nb, uint8_t* wbuf) { expand_weight_block_u8(w, nb, wbuf); }
  static int64_t group_steps(int, int) { return kKStepsL1; }
  // Adds `steps` k-steps of R rows into c32[2R][8] (see gemm_ymm_tile.inc).
  template <int R>
  static void chunk(int32_t (*c32)[8], const uint8_t* a, int64_t lda, const uint8_t* wp, int64_t steps) {
    static_assert(R >= 1 && R <= kRows);
    if (steps <= 0) return;
    if constexpr (R >= 5) {
      const uint8_t* a0 = a;
      const uint8_t* a3 = a + 3 * lda;
      int64_t n = steps;
      LOWBIT_YMM_CHUNK(LOWBIT_VNNI_ROW, "", LOWBIT_YMM_ADD_STORE);
    } else {
      few_rows_chunk<R>(c32, a, lda, wp, steps);
    }
  }
};
#undef LOWBIT_VNNI_ROW
#undef LOWBIT_YMM_CHUNK
#undef LOWBIT_YMM_ADD_STORE

}  // namespace

void gemm_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1) {
  ymm_gemm_tile<DpbusdKernel>(p, m0, m1, nb0, nb1);
}

double peak_probe(int64_t iters) {
  // 12 independent ymm vpdpbusd chains (5-cycle latency x 2 per cycle on Golden Cove needs 10),
  // all in one asm block so the accumulators really live in ymm0..11 (see the AVX-512 probe).
  int64_t n = iters;
  asm volatile(
      "vpxor %%xmm14, %%xmm14, %%xmm14\n\t"
      "vpcmpeqd %%ymm15, %%ymm15, %%ymm15\n\t"
      "1:\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm0\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm1\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm2\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm3\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm4\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm5\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm6\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm7\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm8\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm9\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm10\n\t"
      "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm11\n\t"
      "dec %0\n\t"
      "jnz 1b"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm14", "xmm15", "cc");
  return static_cast<double>(iters) * 12 * 32;
}

}  // namespace lowbit::kernels::detail::avx_vnni
