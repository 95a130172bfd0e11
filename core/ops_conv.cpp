// ops_conv.cpp: conv2d forward and backward: the direct kernels over the channel-blocked layout
// (core/conv_direct.h) where they apply, im2col/col2im + sgemm over image chunks otherwise.
#include "core/ops_conv.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "core/autograd.h"
#include "core/blas.h"
#include "core/conv_direct.h"
#include "core/deterministic_sum.h"
#include "core/error.h"
#include "core/fused_activation.h"
#include "core/threading.h"

namespace lowbit {

int64_t conv_output_size(int64_t in, int64_t kernel, const Conv2dOptions& opt) {
  const int64_t span = opt.dilation * (kernel - 1) + 1;
  const int64_t padded = in + 2 * opt.padding;
  LOWBIT_CHECK(padded >= span, "conv2d: kernel of size ", kernel, " (dilation ", opt.dilation,
               ") does not fit input of size ", in, " with padding ", opt.padding);
  return (padded - span) / opt.stride + 1;
}

namespace {
// Output columns [lo, hi) whose input column ow*s + off lies inside [0, w).
std::pair<int64_t, int64_t> valid_columns(int64_t off, int64_t s, int64_t w, int64_t wo) {
  const int64_t lo = std::min(off >= 0 ? 0 : (-off + s - 1) / s, wo);
  const int64_t hi = std::clamp(w - off <= 0 ? 0 : (w - off + s - 1) / s, lo, wo);
  return {lo, hi};
}
}  // namespace

void im2col(const float* x, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
            const Conv2dOptions& opt, int64_t ho, int64_t wo, float* col, int64_t ld) {
  const int64_t s = opt.stride, p = opt.padding, d = opt.dilation;
  for (int64_t ci = 0; ci < c; ++ci) {
    const float* xc = x + ci * h * w;
    for (int64_t ki = 0; ki < kh; ++ki) {
      for (int64_t kj = 0; kj < kw; ++kj) {
        float* row = col + ((ci * kh + ki) * kw + kj) * ld;
        for (int64_t oh = 0; oh < ho; ++oh) {
          const int64_t ih = oh * s - p + ki * d;
          float* dst = row + oh * wo;
          if (ih < 0 || ih >= h) {
            std::fill(dst, dst + wo, 0.f);
            continue;
          }
          const float* src = xc + ih * w;
          // Valid ow range: 0 <= ow*s - p + kj*d < w.
          const int64_t off = kj * d - p;
          const auto [lo, hi] = valid_columns(off, s, w, wo);
          std::fill(dst, dst + lo, 0.f);
          if (s == 1) {
            std::memcpy(dst + lo, src + lo + off, sizeof(float) * (hi - lo));
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * s + off];
          }
          std::fill(dst + hi, dst + wo, 0.f);
        }
      }
    }
  }
}

namespace {

// Inverse of im2col: accumulate columns back into the image gradient.
void col2im_add(const float* col, int64_t ld, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                const Conv2dOptions& opt, int64_t ho, int64_t wo, float* x) {
  const int64_t s = opt.stride, p = opt.padding, d = opt.dilation;
  for (int64_t ci = 0; ci < c; ++ci) {
    float* xc = x + ci * h * w;
    for (int64_t ki = 0; ki < kh; ++ki) {
      for (int64_t kj = 0; kj < kw; ++kj) {
        const float* row = col + ((ci * kh + ki) * kw + kj) * ld;
        for (int64_t oh = 0; oh < ho; ++oh) {
          const int64_t ih = oh * s - p + ki * d;
          if (ih < 0 || ih >= h) continue;
          float* dst = xc + ih * w;
          const float* src = row + oh * wo;
          const int64_t off = kj * d - p;
          const auto [lo, hi] = valid_columns(off, s, w, wo);
          for (int64_t ow = lo; ow < hi; ++ow) dst[ow * s + off] += src[ow];
        }
      }
    }
  }
}

struct ConvGeometry {
  int64_t n, cin, h, w, cout, kh, kw, ho, wo, groups, cin_g, cout_g, k, hwo;
  int64_t chunk;  // images per im2col matrix
};

ConvGeometry geometry(const Tensor& x, const Tensor& weight, const Conv2dOptions& opt) {
  LOWBIT_CHECK(x.dim() == 4, "conv2d: input must be [N, C, H, W], got ", to_string(x.shape()));
  LOWBIT_CHECK(weight.dim() == 4, "conv2d: weight must be [Cout, Cin/groups, KH, KW], got ",
               to_string(weight.shape()));
  LOWBIT_CHECK(opt.stride >= 1 && opt.dilation >= 1 && opt.padding >= 0 && opt.groups >= 1,
               "conv2d: stride and dilation must be >= 1, padding >= 0, groups >= 1");
  ConvGeometry g{};
  g.n = x.size(0);
  g.cin = x.size(1);
  g.h = x.size(2);
  g.w = x.size(3);
  g.cout = weight.size(0);
  g.kh = weight.size(2);
  g.kw = weight.size(3);
  g.groups = opt.groups;
  LOWBIT_CHECK(g.cin % g.groups == 0 && g.cout % g.groups == 0, "conv2d: channels in ", g.cin,
               " and out ", g.cout, " must both divide by groups ", g.groups);
  g.cin_g = g.cin / g.groups;
  g.cout_g = g.cout / g.groups;
  LOWBIT_CHECK(weight.size(1) == g.cin_g, "conv2d: weight ", to_string(weight.shape()),
               " expects ", weight.size(1) * g.groups, " input channels, input ", to_string(x.shape()),
               " has ", g.cin);
  g.ho = conv_output_size(g.h, g.kh, opt);
  g.wo = conv_output_size(g.w, g.kw, opt);
  g.k = g.cin_g * g.kh * g.kw;
  g.hwo = g.ho * g.wo;
  // One chunk is one leaf of the deterministic batch sum (core/deterministic_sum.h): the weight
  // and bias gradients are per-chunk partials, and fixed chunks keep every sgemm's shape, hence
  // every output, independent of the thread count and of where a rank's share of the batch starts.
  g.chunk = kReduceChunkImages;
  return g;
}

// Per-thread scratch that grows and is kept: no allocation per call once warm. Safe because a
// conv body never waits on other TBB work, so a thread runs one body at a time.
float* scratch(int slot, int64_t floats) {
  thread_local std::vector<float> buffers[6];
  auto& b = buffers[slot];
  if (static_cast<int64_t>(b.size()) < floats) b.resize(static_cast<size_t>(floats));
  return b.data();
}

// The direct path: groups 1, dilation 1, any padding (backward-data's phases take any); an ISA with
// kernels (the scalar level keeps im2col + sgemm, whose sgemm has its own dispatch).
bool use_direct(const ConvGeometry& g, const Conv2dOptions& opt, const direct_conv::Kernels& k) {
  return k.forward != nullptr && g.groups == 1 && opt.dilation == 1;
}

// The blocked shapes of one conv's forward (x padded -> y), its weights and its dx.
struct DirectShapes {
  direct_conv::ConvShape forward;
  int64_t x_floats, y_floats, dx_floats, w_floats;
};

DirectShapes direct_shapes(const ConvGeometry& g, const Conv2dOptions& opt) {
  using direct_conv::blocks_of;
  const int64_t s = opt.stride, p = opt.padding, B = direct_conv::kConvBlock;
  DirectShapes d{};
  d.forward = {g.cin, g.h + 2 * p, g.w + 2 * p, g.cout, g.ho, g.wo, g.kh, g.kw, s};
  d.x_floats = blocks_of(g.cin) * d.forward.in_h * d.forward.in_w * B;
  d.y_floats = blocks_of(g.cout) * g.hwo * B;
  d.dx_floats = blocks_of(g.cin) * g.h * g.w * B;
  d.w_floats = blocks_of(g.cout) * blocks_of(g.cin) * g.kh * g.kw * B * B;
  return d;
}

// One image of an activation of c channels x h x w, stored in `layout`, into the kernels' padded
// blocked buffer `out` (out_h x out_w): nchw is transposed, nchw16c copied; then `act` (when not
// null) on its pixels while they are in cache (the padding stays zero: it pads act(x)).
void pack_image(const direct_conv::Kernels& k, Layout layout, const FusedActivation* act, const float* x, int64_t c,
                int64_t h, int64_t w, int64_t top, int64_t left, int64_t out_h, int64_t out_w, float* out) {
  const int64_t B = direct_conv::kConvBlock;
  if (layout == Layout::nchw16c)
    direct_conv::pad_blocked(x, c, h, w, top, left, out_h, out_w, out);
  else
    k.pack(x, c, h, w, 1, top, left, out_h, out_w, out);
  if (act)
    for (int64_t cb = 0; cb < direct_conv::blocks_of(c); ++cb)
      for (int64_t ih = 0; ih < h; ++ih) {
        float* row = out + ((cb * out_h + top + ih) * out_w + left) * B;
        act->forward(row, row, w * B);
      }
}

// x_keep (when not null, n * x_floats): keeps every packed input for the weight gradient, which
// then needs no second packing pass. y: nchw16c (written by the kernel itself, plus the bias) or
// nchw (unpacked from a scratch image, with the bias).
void direct_forward(const direct_conv::Kernels& k, const ConvGeometry& g, const Conv2dOptions& opt,
                    const Tensor& x, const FusedActivation* act, const float* pw, const float* pb, Tensor& y,
                    float* x_keep) {
  const DirectShapes d = direct_shapes(g, opt);
  std::vector<float> wt(static_cast<size_t>(d.w_floats));
  direct_conv::pack_weights(pw, g.cout, g.cin, g.kh, g.kw, /*flipped=*/false, wt.data());
  const Layout x_layout = x.layout(), y_layout = y.layout();
  const float* px = x.raw_data();
  float* py = y.raw_data();
  parallel_for(0, g.n, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      float* xb = x_keep ? x_keep + n * d.x_floats : scratch(0, d.x_floats);
      pack_image(k, x_layout, act, px + n * g.cin * g.h * g.w, g.cin, g.h, g.w, opt.padding, opt.padding, d.forward.in_h,
              d.forward.in_w, xb);
      if (y_layout == Layout::nchw16c) {
        float* yb = py + n * g.cout * g.hwo;
        k.forward(d.forward, xb, wt.data(), yb);
        if (pb) direct_conv::add_bias_blocked(yb, g.cout, g.hwo, pb);
      } else {
        float* yb = scratch(1, d.y_floats);
        k.forward(d.forward, xb, wt.data(), yb);
        k.unpack(yb, g.cout, g.ho, g.wo, pb, py + n * g.cout * g.hwo);
      }
    }
  });
}

// dx (when defined, overwritten, in its own layout), the per-chunk weight-gradient partials (when
// not null) and, with an input activation `act`, the per-chunk shares of its parameter's
// gradient (act_parts, when not null). Per chunk, dy (gy, in its layout) is packed once, padded for
// backward-data's phases, and the weight gradient reads the same buffer. x_packed: the forward's
// packed (activated) inputs, or null to pack x here.
void direct_backward(const direct_conv::Kernels& k, const ConvGeometry& g, const Conv2dOptions& opt,
                     const Tensor& x, const FusedActivation* act, const float* x_packed, const float* pw,
                     const Tensor& gy, Tensor& dx, float* dw_parts, float* act_parts) {
  const DirectShapes d = direct_shapes(g, opt);
  const int64_t p = opt.padding, B = direct_conv::kConvBlock;
  // Backward-data by phases (conv_direct.h) reads dy padded, undilated; the weight gradient reads
  // the same buffer.
  const direct_conv::BackwardDataPlan plan(g.cin, g.h, g.w, g.cout, g.kh, g.kw, opt.stride, p, pw);
  const int64_t dy_floats = plan.scratch_floats();
  const direct_conv::GradLayout dy_layout{dy_floats, plan.padded_h * plan.padded_w * B, plan.padded_w * B, B};
  const bool want_dx = dx.defined();
  // With an input activation, backward-data gives the gradient of act(x), which act's backward
  // turns into dx and its parameter's share.
  const bool want_dact = act && (want_dx || act_parts);
  const int64_t image = g.cin * g.h * g.w;
  const Layout g_layout = gy.layout(), x_layout = x.layout(), dx_layout = want_dx ? dx.layout() : Layout::nchw;
  const float* pg = gy.raw_data();
  const float* px = x.raw_data();
  float* pdx = want_dx ? dx.raw_data() : nullptr;
  const int64_t chunks = (g.n + g.chunk - 1) / g.chunk;
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      const int64_t n0 = ch * g.chunk, nb = std::min(g.chunk, g.n - n0);
      float* dyb = scratch(0, nb * dy_floats);
      for (int64_t b = 0; b < nb; ++b)
        pack_image(k, g_layout, nullptr, pg + (n0 + b) * g.cout * g.hwo, g.cout, g.ho, g.wo, plan.pad_top, plan.pad_left,
                   plan.padded_h, plan.padded_w, dyb + b * dy_floats);
      if (want_dact) {
        double share = 0;
        for (int64_t b = 0; b < nb; ++b) {
          float* dact = scratch(1, d.dx_floats);
          direct_conv::backward_data_image_padded(k, plan, dyb + b * dy_floats, dact);
          if (x_layout != Layout::nchw16c) {  // act's backward pairs it with x element for element
            float* unpacked = scratch(4, image);
            k.unpack(dact, g.cin, g.h, g.w, nullptr, unpacked);
            dact = unpacked;
          }
          share += act->backward(px + (n0 + b) * image, dact, want_dx ? pdx + (n0 + b) * image : scratch(5, image),
                                 image);
        }
        if (act_parts) act_parts[ch] = static_cast<float>(share);
      } else if (want_dx) {
        for (int64_t b = 0; b < nb; ++b) {
          float* out = pdx + (n0 + b) * g.cin * g.h * g.w;
          if (dx_layout == Layout::nchw16c) {
            direct_conv::backward_data_image_padded(k, plan, dyb + b * dy_floats, out);
          } else {
            float* dxb = scratch(1, d.dx_floats);
            direct_conv::backward_data_image_padded(k, plan, dyb + b * dy_floats, dxb);
            k.unpack(dxb, g.cin, g.h, g.w, nullptr, out);
          }
        }
      }
      if (dw_parts) {
        const float* xb = x_packed ? x_packed + n0 * d.x_floats : nullptr;
        if (!xb) {
          float* packed = scratch(2, nb * d.x_floats);
          for (int64_t b = 0; b < nb; ++b)
            pack_image(k, x_layout, act, px + (n0 + b) * g.cin * g.h * g.w, g.cin, g.h, g.w, p, p, d.forward.in_h,
                       d.forward.in_w, packed + b * d.x_floats);
          xb = packed;
        }
        float* dwb = scratch(3, d.w_floats);
        k.weight_grad(d.forward, nb, xb, d.x_floats, dyb + (plan.pad_top * plan.padded_w + plan.pad_left) * B,
                      dy_layout, dwb);
        direct_conv::unpack_weights(dwb, g.cout, g.cin, g.kh, g.kw, dw_parts + ch * g.cout * g.k);
      }
    }
  });
}

// The im2col path's forward: per chunk, im2col of its images side by side, one sgemm per group.
void im2col_forward(const ConvGeometry& g, const Conv2dOptions& opt, const float* px, const float* pw,
                    const float* pb, float* py) {
  const int64_t chunks = (g.n + g.chunk - 1) / g.chunk;
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    // Scratch is fully overwritten before use: no zero-fill.
    auto col = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(g.k * g.chunk * g.hwo));
    auto tmp = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(g.cout_g * g.chunk * g.hwo));
    for (int64_t ch = c0; ch < c1; ++ch) {
      const int64_t n0 = ch * g.chunk, nb = std::min(g.chunk, g.n - n0), ld = nb * g.hwo;
      for (int64_t gr = 0; gr < g.groups; ++gr) {
        for (int64_t b = 0; b < nb; ++b)
          im2col(px + ((n0 + b) * g.cin + gr * g.cin_g) * g.h * g.w, g.cin_g, g.h, g.w, g.kh, g.kw, opt,
                 g.ho, g.wo, col.get() + b * g.hwo, ld);
        sgemm(false, false, g.cout_g, ld, g.k, 1.f, pw + gr * g.cout_g * g.k, g.k, col.get(), ld, 0.f,
              tmp.get(), ld);
        for (int64_t b = 0; b < nb; ++b)
          for (int64_t co = 0; co < g.cout_g; ++co) {
            const int64_t oc = gr * g.cout_g + co;
            float* dst = py + ((n0 + b) * g.cout + oc) * g.hwo;
            const float* src = tmp.get() + co * ld + b * g.hwo;
            const float bv = pb ? pb[oc] : 0.f;
            for (int64_t j = 0; j < g.hwo; ++j) dst[j] = src[j] + bv;
          }
      }
    }
  });
}

// The im2col path's backward: dx (when not null; accumulated, so zeroed by the caller) by sgemm +
// col2im, and the per-chunk weight-gradient partials (when not null) by sgemm.
void im2col_backward(const ConvGeometry& g, const Conv2dOptions& opt, const float* px, const float* pw,
                     const float* pg, float* dx, float* dw_parts) {
  const int64_t chunks = (g.n + g.chunk - 1) / g.chunk;
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    auto col = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(g.k * g.chunk * g.hwo));
    auto gtmp = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(g.cout_g * g.chunk * g.hwo));
    for (int64_t ch = c0; ch < c1; ++ch) {
      const int64_t n0 = ch * g.chunk, nb = std::min(g.chunk, g.n - n0), ld = nb * g.hwo;
      for (int64_t gr = 0; gr < g.groups; ++gr) {
        // Gather dy of this chunk and group as [cout_g, nb*hwo].
        for (int64_t b = 0; b < nb; ++b)
          for (int64_t co = 0; co < g.cout_g; ++co)
            std::memcpy(gtmp.get() + co * ld + b * g.hwo, pg + ((n0 + b) * g.cout + gr * g.cout_g + co) * g.hwo,
                        sizeof(float) * g.hwo);
        if (dw_parts) {
          for (int64_t b = 0; b < nb; ++b)
            im2col(px + ((n0 + b) * g.cin + gr * g.cin_g) * g.h * g.w, g.cin_g, g.h, g.w, g.kh, g.kw, opt, g.ho,
                   g.wo, col.get() + b * g.hwo, ld);
          // dW_g = dy_g [cout_g, ld] x col^T [ld, k]
          sgemm(false, true, g.cout_g, g.k, ld, 1.f, gtmp.get(), ld, col.get(), ld, 0.f,
                dw_parts + ch * g.cout * g.k + gr * g.cout_g * g.k, g.k);
        }
        if (dx) {
          // dcol = W_g^T [k, cout_g] x dy_g [cout_g, ld]
          sgemm(true, false, g.k, ld, g.cout_g, 1.f, pw + gr * g.cout_g * g.k, g.k, gtmp.get(), ld, 0.f, col.get(),
                ld);
          for (int64_t b = 0; b < nb; ++b)
            col2im_add(col.get() + b * g.hwo, ld, g.cin_g, g.h, g.w, g.kh, g.kw, opt, g.ho, g.wo,
                       dx + ((n0 + b) * g.cin + gr * g.cin_g) * g.h * g.w);
        }
      }
    }
  });
}

// db: per-chunk sums of dy over each output plane, then the fixed tree.
Tensor bias_gradient(const ConvGeometry& g, const float* pg) {
  const int64_t chunks = (g.n + g.chunk - 1) / g.chunk;
  std::vector<float> parts(static_cast<size_t>(chunks * g.cout));
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch)
      for (int64_t b = ch * g.chunk; b < std::min(g.n, (ch + 1) * g.chunk); ++b)
        for (int64_t oc = 0; oc < g.cout; ++oc) {
          const float* src = pg + (b * g.cout + oc) * g.hwo;
          float s = 0.f;
          for (int64_t j = 0; j < g.hwo; ++j) s += src[j];
          parts[ch * g.cout + oc] += s;
        }
  });
  tree_sum_rows(parts.data(), chunks, g.cout);
  Tensor db = Tensor::empty({g.cout});
  std::copy_n(parts.data(), g.cout, db.data());
  return db;
}

}  // namespace

namespace {
Tensor conv2d_op(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt,
                 const FusedActivation* act) {
  const ConvGeometry g = geometry(x, weight, opt);
  if (bias.defined())
    LOWBIT_CHECK(bias.dim() == 1 && bias.size(0) == g.cout, "conv2d: bias ", to_string(bias.shape()),
                 " does not match ", g.cout, " output channels");
  const float* pb = bias.defined() ? bias.data() : nullptr;
  const direct_conv::Kernels direct = direct_conv::kernels_for(kernels::active_isa_level());
  const bool fast = use_direct(g, opt, direct);
  // im2col packs nothing the activation could ride on: its own op first.
  if (act && !fast) return conv2d_op(activation(x, *act), weight, bias, opt, nullptr);
  // The direct path reads x in either layout and writes y blocked where it can (core/layout.h),
  // so a CNN's activations stay blocked from layer to layer; im2col reads and writes nchw.
  const Shape y_shape{g.n, g.cout, g.ho, g.wo};
  Tensor y = Tensor::empty(y_shape, fast && can_block(y_shape) ? Layout::nchw16c : Layout::nchw);
  const Tensor act_param = act ? act->param : Tensor();
  const bool gx = x.requires_grad(), gw = weight.requires_grad(), gb = bias.defined() && bias.requires_grad();
  const bool ga = act_param.defined() && act_param.requires_grad();
  // The weight gradient reuses the forward's packed inputs (memory for one pass over them).
  Tensor x_packed = fast && gw && grad_enabled() ? Tensor::empty({g.n * direct_shapes(g, opt).x_floats}) : Tensor();
  if (fast)
    direct_forward(direct, g, opt, x, act, weight.data(), pb, y, x_packed.defined() ? x_packed.data() : nullptr);
  else
    im2col_forward(g, opt, x.data(), weight.data(), pb, y.data());

  std::optional<FusedActivation> activation_copy;
  if (act) activation_copy = *act;
  return record(y, act ? "conv2d_act" : "conv2d", {x, weight, bias, act_param},
                [x = x.detach(), w = weight.detach(), opt, g, gx, gw, gb, ga, fast, direct, x_packed,
                 act = std::move(activation_copy), y_layout = y.layout()](const Tensor& gy_in) {
    // Per-chunk weight gradients [chunks, cout*k] (and act's parameter shares), then the fixed tree.
    const int64_t chunks = (g.n + g.chunk - 1) / g.chunk;
    std::vector<float> dw_parts(gw ? static_cast<size_t>(chunks * g.cout * g.k) : 0);
    std::vector<float> act_parts(ga ? static_cast<size_t>(chunks) : 0);
    float* pdw = gw ? dw_parts.data() : nullptr;
    Tensor dx;
    if (fast) {
      // dx in x's layout, every element written; dy read in the output's layout.
      if (gx) dx = Tensor::empty(x.shape(), x.layout());
      const Tensor gy = to_layout(gy_in, y_layout);
      if (gx || gw || ga)
        direct_backward(direct, g, opt, x, act ? &*act : nullptr, x_packed.defined() ? x_packed.data() : nullptr,
                        w.data(), gy, dx, pdw, ga ? act_parts.data() : nullptr);
    } else {
      if (gx) dx = Tensor::zeros(x.shape());  // col2im accumulates
      if (gx || gw) im2col_backward(g, opt, x.data(), w.data(), gy_in.data(), gx ? dx.data() : nullptr, pdw);
    }
    Tensor dw, dparam;
    if (gw) {
      tree_sum_rows(dw_parts.data(), chunks, g.cout * g.k);
      dw = Tensor::empty(w.shape());
      std::copy_n(dw_parts.data(), g.cout * g.k, dw.data());
    }
    if (ga) {
      tree_sum_rows(act_parts.data(), chunks, 1);
      dparam = Tensor::full({1}, act_parts[0]);
    }
    return std::vector<Tensor>{dx, dw, gb ? bias_gradient(g, gy_in.data()) : Tensor(), dparam};
  });
}
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt) {
  return conv2d_op(x, weight, bias, opt, nullptr);
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt,
              const FusedActivation& input_activation) {
  return conv2d_op(x, weight, bias, opt, &input_activation);
}

}  // namespace lowbit
