// conv_direct_avx512.cpp: the direct-convolution kernels (conv_direct_kernels.inc) on AVX-512F:
// one zmm per 16-channel block; forward register block 14 pixels x 2 output blocks (28
// accumulators), weight gradient 16 input channels (16 accumulators).
#include <immintrin.h>

#include "core/conv_direct.h"

namespace {
struct V {
  static __m512 zero() { return _mm512_setzero_ps(); }
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static __m512 fma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
  static void store(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
};
constexpr int kMaxPixels = 14;
constexpr int kMaxOutBlocks = 2;
constexpr int kMaxGradChannels = 16;
}  // namespace

#include "core/conv_direct_kernels.inc"

namespace lowbit::direct_conv {
Kernels avx512_kernels() { return {forward_image, weight_grad}; }
}  // namespace lowbit::direct_conv
