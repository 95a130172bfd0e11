// conv_direct.cpp: the ISA dispatch of the direct-convolution kernels and their plain-loop
// references (see conv_direct.h for the layouts and the summation order).
#include "core/conv_direct.h"

#include <algorithm>
#include <cmath>

#include "core/arch.h"

namespace lowbit::direct_conv {

#if LOWBIT_ARCH_X86
Kernels avx2_kernels();    // conv_direct_avx2.cpp
Kernels avx512_kernels();  // conv_direct_avx512.cpp
#endif

Kernels kernels_for(kernels::Isa isa) {
#if LOWBIT_ARCH_X86
  switch (isa) {
    case kernels::Isa::amx:  // the tiles hold integers only: the avx512 float convolution
    case kernels::Isa::avx512: return avx512_kernels();
    // AVX-VNNI adds only integer dot products: its float convolution is the AVX2 one.
    case kernels::Isa::avx_vnni:
    case kernels::Isa::avx2: return avx2_kernels();
    case kernels::Isa::scalar: break;
  }
#else
  (void)isa;  // the scalar level is this build's only one (core/arch.h)
#endif
  return {nullptr, nullptr, pack_activation, unpack_activation};
}

void pack_activation(const float* x, int64_t c, int64_t h, int64_t w, int64_t dilation, int64_t pad_top,
                     int64_t pad_left, int64_t out_h, int64_t out_w, float* out) {
  const int64_t B = kConvBlock, blocks = blocks_of(c);
  std::fill(out, out + blocks * out_h * out_w * B, 0.f);
  for (int64_t cb = 0; cb < blocks; ++cb)
    for (int64_t ih = 0; ih < h; ++ih) {
      float* row = out + ((cb * out_h + pad_top + ih * dilation) * out_w + pad_left) * B;
      for (int64_t i = 0; i < std::min(B, c - cb * B); ++i) {
        const float* src = x + ((cb * B + i) * h + ih) * w;
        for (int64_t iw = 0; iw < w; ++iw) row[iw * dilation * B + i] = src[iw];
      }
    }
}

void pad_blocked(const float* blk, int64_t c, int64_t h, int64_t w, int64_t dilation, int64_t pad_top,
                 int64_t pad_left, int64_t out_h, int64_t out_w, float* out) {
  const int64_t B = kConvBlock, blocks = blocks_of(c);
  for (int64_t cb = 0; cb < blocks; ++cb) {
    float* dst = out + cb * out_h * out_w * B;
    const float* src = blk + cb * h * w * B;
    if (dilation > 1) {  // zeros everywhere but the pixels
      std::fill(dst, dst + out_h * out_w * B, 0.f);
      for (int64_t ih = 0; ih < h; ++ih)
        for (int64_t iw = 0; iw < w; ++iw)
          std::copy_n(src + (ih * w + iw) * B, B, dst + ((pad_top + ih * dilation) * out_w + pad_left + iw * dilation) * B);
      continue;
    }
    // Undilated: each row is its left padding, one copy of the pixels, its right padding; rows
    // above and below the pixels are zero.
    for (int64_t oh = 0; oh < out_h; ++oh) {
      float* row = dst + oh * out_w * B;
      const int64_t ih = oh - pad_top;
      if (ih < 0 || ih >= h) {
        std::fill(row, row + out_w * B, 0.f);
        continue;
      }
      std::fill(row, row + pad_left * B, 0.f);
      std::copy_n(src + ih * w * B, w * B, row + pad_left * B);
      std::fill(row + (pad_left + w) * B, row + out_w * B, 0.f);
    }
  }
}

void add_bias_blocked(float* blk, int64_t c, int64_t hw, const float* bias) {
  const int64_t B = kConvBlock;
  for (int64_t cb = 0; cb < blocks_of(c); ++cb)
    for (int64_t j = 0; j < hw; ++j)
      for (int64_t i = 0; i < std::min(B, c - cb * B); ++i) blk[(cb * hw + j) * B + i] += bias[cb * B + i];
}

void unpack_activation(const float* blk, int64_t c, int64_t h, int64_t w, const float* bias, float* y) {
  const int64_t B = kConvBlock, hw = h * w;
  for (int64_t ch = 0; ch < c; ++ch) {
    const float* src = blk + (ch / B) * hw * B + ch % B;
    float* dst = y + ch * hw;
    const float b = bias ? bias[ch] : 0.f;
    if (bias) {
      for (int64_t j = 0; j < hw; ++j) dst[j] = src[j * B] + b;
    } else {
      for (int64_t j = 0; j < hw; ++j) dst[j] = src[j * B];
    }
  }
}

void pack_weights(const float* w, int64_t cout, int64_t cin, int64_t kh, int64_t kw, bool flipped, float* out) {
  const int64_t B = kConvBlock, ob = blocks_of(cout), ib = blocks_of(cin);
  const int64_t inner = flipped ? ob : ib;  // blocks of the kernel's input channels
  std::fill(out, out + ob * ib * kh * kw * B * B, 0.f);
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t i = 0; i < cin; ++i)
      for (int64_t r = 0; r < kh; ++r)
        for (int64_t c = 0; c < kw; ++c) {
          // Kernel roles: "out" channel u of block U, "in" channel v of block V.
          const int64_t u = flipped ? i : o, v = flipped ? o : i;
          const int64_t rr = flipped ? kh - 1 - r : r, cc = flipped ? kw - 1 - c : c;
          out[((((u / B) * inner + v / B) * kh + rr) * kw + cc) * B * B + (v % B) * B + u % B] =
              w[((o * cin + i) * kh + r) * kw + c];
        }
}

void unpack_weights(const float* blk, int64_t cout, int64_t cin, int64_t kh, int64_t kw, float* dw) {
  const int64_t B = kConvBlock, ib = blocks_of(cin);
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t i = 0; i < cin; ++i)
      for (int64_t r = 0; r < kh; ++r)
        for (int64_t c = 0; c < kw; ++c)
          dw[((o * cin + i) * kh + r) * kw + c] =
              blk[((((o / B) * ib + i / B) * kh + r) * kw + c) * B * B + (i % B) * B + o % B];
}

namespace {
// Input value at (c, ih, iw) of one image, zero outside it.
inline float at(const float* x, int64_t c, int64_t ih, int64_t iw, int64_t h, int64_t w) {
  return (ih < 0 || ih >= h || iw < 0 || iw >= w) ? 0.f : x[(c * h + ih) * w + iw];
}
}  // namespace

void conv_reference_forward(const float* x, const float* w, float* y, int64_t n, int64_t cin, int64_t h,
                            int64_t wd, int64_t cout, int64_t kh, int64_t kw, int64_t stride, int64_t pad) {
  const int64_t ho = (h + 2 * pad - kh) / stride + 1, wo = (wd + 2 * pad - kw) / stride + 1;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t o = 0; o < cout; ++o)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow) {
          float acc = 0.f;
          for (int64_t ib = 0; ib < blocks_of(cin); ++ib)
            for (int64_t r = 0; r < kh; ++r)
              for (int64_t c = 0; c < kw; ++c)
                for (int64_t i = ib * kConvBlock; i < std::min(cin, (ib + 1) * kConvBlock); ++i)
                  acc = std::fma(at(x + b * cin * h * wd, i, oh * stride - pad + r, ow * stride - pad + c, h, wd),
                                 w[((o * cin + i) * kh + r) * kw + c], acc);
          y[((b * cout + o) * ho + oh) * wo + ow] = acc;
        }
}

void conv_reference_backward_data(const float* dy, const float* w, float* dx, int64_t n, int64_t cin,
                                  int64_t h, int64_t wd, int64_t cout, int64_t kh, int64_t kw,
                                  int64_t stride, int64_t pad) {
  const int64_t ho = (h + 2 * pad - kh) / stride + 1, wo = (wd + 2 * pad - kw) / stride + 1;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < cin; ++i)
      for (int64_t ih = 0; ih < h; ++ih)
        for (int64_t iw = 0; iw < wd; ++iw) {
          // dx[i][ih][iw] = sum of dy[o][oh][ow] * w[o][i][r][c] over oh*s - p + r = ih (same for w),
          // taken in the order of the flipped stride-1 convolution over the dilated dy.
          float acc = 0.f;
          for (int64_t ob = 0; ob < blocks_of(cout); ++ob)
            for (int64_t fr = 0; fr < kh; ++fr)
              for (int64_t fc = 0; fc < kw; ++fc) {
                const int64_t r = kh - 1 - fr, c = kw - 1 - fc;
                const int64_t qh = ih + pad - r, qw = iw + pad - c;  // = oh*s, ow*s
                if (qh < 0 || qw < 0 || qh % stride != 0 || qw % stride != 0) continue;
                const int64_t oh = qh / stride, ow = qw / stride;
                if (oh >= ho || ow >= wo) continue;
                for (int64_t o = ob * kConvBlock; o < std::min(cout, (ob + 1) * kConvBlock); ++o)
                  acc = std::fma(dy[((b * cout + o) * ho + oh) * wo + ow], w[((o * cin + i) * kh + r) * kw + c], acc);
              }
          dx[((b * cin + i) * h + ih) * wd + iw] = acc;
        }
}

void conv_reference_weight_grad(const float* x, const float* dy, float* dw, int64_t n, int64_t cin,
                                int64_t h, int64_t wd, int64_t cout, int64_t kh, int64_t kw,
                                int64_t stride, int64_t pad) {
  const int64_t ho = (h + 2 * pad - kh) / stride + 1, wo = (wd + 2 * pad - kw) / stride + 1;
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t i = 0; i < cin; ++i)
      for (int64_t r = 0; r < kh; ++r)
        for (int64_t c = 0; c < kw; ++c) {
          float acc = 0.f;
          for (int64_t b = 0; b < n; ++b)
            for (int64_t oh = 0; oh < ho; ++oh)
              for (int64_t ow = 0; ow < wo; ++ow)
                acc = std::fma(at(x + b * cin * h * wd, i, oh * stride - pad + r, ow * stride - pad + c, h, wd),
                               dy[((b * cout + o) * ho + oh) * wo + ow], acc);
          dw[((o * cin + i) * kh + r) * kw + c] = acc;
        }
}

}  // namespace lowbit::direct_conv
