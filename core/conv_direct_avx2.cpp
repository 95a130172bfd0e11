// conv_direct_avx2.cpp: the direct-convolution kernels (conv_direct_kernels.inc) on AVX2 + FMA:
// two ymm per 16-channel block; forward register block 6 pixels x 1 output block (12
// accumulators; 4 pixels with the three weight pairs of a 3x3 row held), weight gradient 6 input channels (12 accumulators), of 16 ymm registers.
#include <immintrin.h>

#include "core/conv_direct.h"

namespace {
struct Pair {
  __m256 lo, hi;
};
struct V {
  static Pair zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static Pair load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static Pair broadcast(const float* p) {
    const __m256 v = _mm256_broadcast_ss(p);
    return {v, v};
  }
  static Pair fma(Pair a, Pair b, Pair c) {
    return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
  }
  static void store(float* p, Pair v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
  }
};
constexpr int kMaxOutBlocks = 1;
// Accumulator and weight pairs within 15 ymm (one for the broadcast).
constexpr int max_pixels(int out_blocks, int kw) {
  const int weights = (kw == 0 ? 1 : kw) * out_blocks;
  return (7 - weights) / out_blocks;
}
constexpr int kMaxGradOutBlocks = 1;
// Weight-gradient accumulator pairs: 6, one kernel column at a time. No tap reuse: its 3x3 block
// fits 2 channels x 3 columns, whose 3 dy pairs + 2 broadcasts per 12 FMAs load as much as the
// per-column block's 2 + 6, and bench fconv ran it 10-20 % slower (3x3 layers, 16-64 channels).
constexpr int grad_channels(int out_blocks, int kw) { return kw == 0 ? 6 / out_blocks : 0; }
constexpr int kGradWindowVectors = 0;  // no tap reuse, no window
}  // namespace

#include "core/conv_direct_kernels.inc"

namespace lowbit::direct_conv {
// Packing: the portable loops (a ymm transpose would pay less than on AVX-512).
Kernels avx2_kernels() { return {forward_image, forward_strided, weight_grad, pack_activation, unpack_activation}; }
}  // namespace lowbit::direct_conv
