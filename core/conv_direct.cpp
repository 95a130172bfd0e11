// conv_direct.cpp: the ISA dispatch of the direct-convolution kernels and their plain-loop
// references (see conv_direct.h for the layouts and the summation order).
#include "core/conv_direct.h"

#include <algorithm>
#include <cmath>

#include "core/arch.h"
#include "core/error.h"

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
  return {nullptr, nullptr, nullptr, pack_activation, unpack_activation};
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

void pad_blocked(const float* blk, int64_t c, int64_t h, int64_t w, int64_t pad_top, int64_t pad_left, int64_t out_h,
                 int64_t out_w, float* out) {
  const int64_t B = kConvBlock;
  for (int64_t cb = 0; cb < blocks_of(c); ++cb) {
    const float* src = blk + cb * h * w * B;
    // Each row is its left padding, one copy of the pixels, its right padding; rows above and
    // below the pixels are zero.
    for (int64_t oh = 0; oh < out_h; ++oh) {
      float* row = out + (cb * out_h + oh) * out_w * B;
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
  // Per (o, i) the kh*kw taps, B*B floats apart in blk: the index arithmetic once per pair (this
  // runs once per 8-image chunk of every conv's weight gradient).
  const int64_t B = kConvBlock, ib = blocks_of(cin), taps = kh * kw;
  for (int64_t o = 0; o < cout; ++o) {
    const float* src_o = blk + (o / B) * ib * taps * B * B + o % B;
    for (int64_t i = 0; i < cin; ++i) {
      const float* src = src_o + (i / B) * taps * B * B + (i % B) * B;
      float* dst = dw + (o * cin + i) * taps;
      for (int64_t t = 0; t < taps; ++t) dst[t] = src[t * B * B];
    }
  }
}

namespace {
// One axis of a backward-data phase: dx positions first, first + s, ... (count of them) meet the
// flipped taps tap0, tap0 + s, ... (taps of them), output u at tap j reading dy position
// u + j + dy0.
struct PhaseAxis {
  int64_t count, taps, tap0, dy0;
};
PhaseAxis phase_axis(int64_t first, int64_t extent, int64_t k, int64_t s, int64_t pad) {
  const int64_t top = k - 1 - pad;  // padding of the dilated dy before its first row
  PhaseAxis a{};
  a.count = first < extent ? (extent - first + s - 1) / s : 0;
  a.tap0 = ((top - first) % s + s) % s;
  a.taps = a.tap0 < k ? (k - a.tap0 + s - 1) / s : 0;
  a.dy0 = (first + a.tap0 - top) / s;  // exact: first + tap0 - top = 0 (mod s)
  return a;
}
}  // namespace

BackwardDataPlan::BackwardDataPlan(int64_t cin_, int64_t h_, int64_t w_, int64_t cout_, int64_t kh_, int64_t kw_,
                                   int64_t stride_, int64_t pad_, const float* weights_)
    : cin(cin_), h(h_), w(w_), cout(cout_), kh(kh_), kw(kw_), stride(stride_), pad(pad_) {
  LOWBIT_CHECK(cin > 0 && h > 0 && w > 0 && cout > 0 && kh > 0 && kw > 0 && stride > 0 && pad >= 0,
               "BackwardDataPlan: sizes must be positive and pad >= 0, got cin ", cin, " h ", h, " w ", w, " cout ",
               cout, " kernel ", kh, "x", kw, " stride ", stride, " pad ", pad);
  LOWBIT_CHECK(h + 2 * pad >= kh && w + 2 * pad >= kw, "BackwardDataPlan: kernel ", kh, "x", kw,
               " larger than the padded input ", h + 2 * pad, "x", w + 2 * pad);
  ho = (h + 2 * pad - kh) / stride + 1;
  wo = (w + 2 * pad - kw) / stride + 1;
  const int64_t B = kConvBlock, ob = blocks_of(cout), ib = blocks_of(cin), s = stride;
  // The scratch's borders: every dy position a phase reads, on both sides of dy.
  pad_top = pad_left = 0;
  int64_t end_h = ho, end_w = wo;
  for (int64_t a = 0; a < s; ++a) {
    const PhaseAxis r = phase_axis(a, h, kh, s, pad), c = phase_axis(a, w, kw, s, pad);
    if (r.count > 0 && r.taps > 0) {
      pad_top = std::max(pad_top, -r.dy0);
      end_h = std::max(end_h, r.dy0 + r.count + r.taps - 1);
    }
    if (c.count > 0 && c.taps > 0) {
      pad_left = std::max(pad_left, -c.dy0);
      end_w = std::max(end_w, c.dy0 + c.count + c.taps - 1);
    }
  }
  padded_h = pad_top + end_h;
  padded_w = pad_left + end_w;
  int64_t offset = 0;
  for (int64_t a = 0; a < s; ++a)
    for (int64_t b = 0; b < s; ++b) {
      const PhaseAxis r = phase_axis(a, h, kh, s, pad), c = phase_axis(b, w, kw, s, pad);
      phases.push_back({a, b, r.count, c.count, r.taps, c.taps, r.dy0, c.dy0, offset});
      offset += ib * ob * r.taps * c.taps * B * B;
    }
  weights.assign(static_cast<size_t>(offset), 0.f);
  // Sub-kernel tap (j, k) of a phase is flipped tap (tap0 + s*j, ...), i.e. w[o][i][kh-1-fr][kw-1-fc];
  // the kernel's input channel is o, its output channel i.
  for (const BackwardDataPhase& ph : phases) {
    const PhaseAxis r = phase_axis(ph.row0, h, kh, s, pad), c = phase_axis(ph.col0, w, kw, s, pad);
    float* out = weights.data() + ph.weights;
    for (int64_t o = 0; o < cout; ++o)
      for (int64_t i = 0; i < cin; ++i)
        for (int64_t j = 0; j < ph.taps_h; ++j)
          for (int64_t k = 0; k < ph.taps_w; ++k) {
            const int64_t fr = r.tap0 + s * j, fc = c.tap0 + s * k;
            out[((((i / B) * ob + o / B) * ph.taps_h + j) * ph.taps_w + k) * B * B + (o % B) * B + i % B] =
                weights_[((o * cin + i) * kh + (kh - 1 - fr)) * kw + (kw - 1 - fc)];
          }
  }
}

void backward_data_image(const Kernels& k, const BackwardDataPlan& plan, const float* dy, float* dx, float* scratch) {
  const int64_t B = kConvBlock, pw = plan.padded_w;
  // dy with its zero borders.
  for (int64_t cb = 0; cb < blocks_of(plan.cout); ++cb)
    for (int64_t row = 0; row < plan.padded_h; ++row) {
      float* dst = scratch + (cb * plan.padded_h + row) * pw * B;
      const int64_t oh = row - plan.pad_top;
      if (oh < 0 || oh >= plan.ho) {
        std::fill(dst, dst + pw * B, 0.f);
        continue;
      }
      std::fill(dst, dst + plan.pad_left * B, 0.f);
      std::copy_n(dy + (cb * plan.ho + oh) * plan.wo * B, plan.wo * B, dst + plan.pad_left * B);
      std::fill(dst + (plan.pad_left + plan.wo) * B, dst + pw * B, 0.f);
    }
  backward_data_image_padded(k, plan, scratch, dx);
}

void backward_data_image_padded(const Kernels& k, const BackwardDataPlan& plan, const float* dy_padded, float* dx) {
  const int64_t B = kConvBlock, s = plan.stride, pw = plan.padded_w;
  const OutputLayout yl{plan.h * plan.w * B, s * plan.w * B, s * B};
  for (const BackwardDataPhase& ph : plan.phases) {
    if (ph.rows == 0 || ph.cols == 0) continue;  // stride larger than the image
    float* y = dx + (ph.row0 * plan.w + ph.col0) * B;
    if (ph.taps_h == 0 || ph.taps_w == 0) {  // no dy reaches these pixels (kernel smaller than the stride)
      for (int64_t cb = 0; cb < blocks_of(plan.cin); ++cb)
        for (int64_t u = 0; u < ph.rows; ++u)
          for (int64_t v = 0; v < ph.cols; ++v) {
            float* p = y + cb * yl.block + u * yl.row + v * yl.pixel;
            std::fill(p, p + B, 0.f);
          }
      continue;
    }
    const ConvShape shape{plan.cout, plan.padded_h, pw, plan.cin, ph.rows, ph.cols, ph.taps_h, ph.taps_w, 1};
    k.forward_strided(shape, dy_padded + ((plan.pad_top + ph.dy_row0) * pw + plan.pad_left + ph.dy_col0) * B,
                      plan.weights.data() + ph.weights, y, yl);
  }
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
              for (int64_t i = ib * kConvBlock; i < std::min(cin, (ib + 1) * kConvBlock); ++i)
                for (int64_t c = 0; c < kw; ++c)
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
          // taken in the order of the flipped stride-1 forward over the dilated dy (ob, fr, o, fc),
          // skipping the taps that read inserted zeros or padding.
          float acc = 0.f;
          for (int64_t ob = 0; ob < blocks_of(cout); ++ob)
            for (int64_t fr = 0; fr < kh; ++fr) {
              const int64_t r = kh - 1 - fr, qh = ih + pad - r;  // = oh*s
              if (qh < 0 || qh % stride != 0 || qh / stride >= ho) continue;
              const int64_t oh = qh / stride;
              for (int64_t o = ob * kConvBlock; o < std::min(cout, (ob + 1) * kConvBlock); ++o)
                for (int64_t fc = 0; fc < kw; ++fc) {
                  const int64_t c = kw - 1 - fc, qw = iw + pad - c;  // = ow*s
                  if (qw < 0 || qw % stride != 0 || qw / stride >= wo) continue;
                  acc = std::fma(dy[((b * cout + o) * ho + oh) * wo + qw / stride],
                                 w[((o * cin + i) * kh + r) * kw + c], acc);
                }
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
