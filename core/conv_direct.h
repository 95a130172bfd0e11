// conv_direct.h: direct float convolution over a channel-blocked layout (no im2col), the fast
// path of core/ops_conv.cpp for groups = 1, dilation = 1, padding <= kernel - 1.
//
// Layouts (one image; B = kConvBlock = 16 channels per block, channel tails zero):
//   blocked activation  A[cb][h][w][B]           (cb = ceil(C / B))
//   blocked weights     Wt[ob][ib][kh][kw][B_in][B_out]
// Forward    y  = conv(x, w, stride s, pad p):  x packed with its zero padding into A, one kernel.
// Backward-data dx = conv(dilate_s(dy) padded by K-1-p, w flipped in kh/kw with in/out swapped,
//               stride 1), computed by phases (BackwardDataPlan): dx pixels (a + s*u, b + s*v)
//               of phase (a, b) only meet the flipped taps (fr, fc) with fr = K-1-p-a (mod s),
//               fc likewise, so each phase is a stride-1 forward of that sub-kernel over the
//               undilated dy, written to every s-th dx pixel; no product reads an inserted zero.
// Backward-weights dw[ob][ib][kh][kw][i][o] = sum over images, oh, ow of
//               A_x[ib][oh*s + kh][ow*s + kw][i] * A_dy[ob][oh][ow][o].
//
// Summation order (what makes every ISA level bit-identical to the plain reference):
//   forward: per output, acc = 0, then for ib, kh, i (i < channels of the block), kw:
//   acc = fma(in, w, acc); the bias is added after. Input channel before kernel column lets the
//   kernel broadcast each input pixel once and feed it to every output it touches in a row
//   ("tap reuse": up to kw FMAs per broadcast and output block).
//   backward-data: the same order for the flipped stride-1 forward over the dilated dy: ob, fr,
//   o, fc; a phase skips only the taps that read inserted zeros (exact zeros: the accumulator,
//   which starts at +0, is never -0, so fma(0, w, acc) == acc), so it gives the same bits.
//   backward-weights: per weight, acc = 0, then for image, oh, ow: acc = fma(x, dy, acc).
// conv_reference_* compute exactly these sums on NCHW tensors with plain loops (std::fma); the
// AVX2 and AVX-512 kernels (conv_direct_kernels.inc) must equal them bit for bit.
#pragma once
#include <cstdint>
#include <vector>

#include "core/cpu_features.h"

namespace lowbit::direct_conv {

constexpr int64_t kConvBlock = 16;

inline int64_t blocks_of(int64_t channels) { return (channels + kConvBlock - 1) / kConvBlock; }

// One kernel call: a blocked input image (already padded) convolved into a blocked output image.
struct ConvShape {
  int64_t in_channels;   // real channels of the input (the last block may be partial)
  int64_t in_h, in_w;    // of the blocked (padded) input buffer
  int64_t out_channels;  // real output channels (weights of tail channels are zero)
  int64_t out_h, out_w;
  int64_t kh, kw, stride;
  int64_t in_blocks() const { return blocks_of(in_channels); }
  int64_t out_blocks() const { return blocks_of(out_channels); }
};

// Where a kernel writes output pixel (oh, ow) of output block ob: y + ob*block + oh*row + ow*pixel.
struct OutputLayout {
  int64_t block, row, pixel;
};
// The dense blocked layout [out_blocks][out_h][out_w][B] of a shape's output.
inline OutputLayout dense_output(const ConvShape& s) {
  return {s.out_h * s.out_w * kConvBlock, s.out_w * kConvBlock, kConvBlock};
}

// The ISA kernels. `x` blocked [in_blocks][in_h][in_w][B], `w` blocked weights, `y` blocked
// [out_blocks][out_h][out_w][B] (written entirely).
using ForwardKernel = void (*)(const ConvShape& s, const float* x, const float* w, float* y);
// The same sums, output pixel (oh, ow) of block ob written (all B lanes) at y + ob*y_layout.block +
// oh*y_layout.row + ow*y_layout.pixel and nothing else written: a backward-data phase writes every
// s-th dx pixel this way.
using ForwardStridedKernel = void (*)(const ConvShape& s, const float* x, const float* w, float* y,
                                      const OutputLayout& y_layout);
// `x`: `images` blocked inputs, image stride x_image; `dy`: blocked output gradients, output
// pixel (oh, ow) of block ob at dy + n*dy.image + ob*dy.block + oh*dy.row + ow*dy.pixel (so the
// dilated, padded dy that backward-data packs serves too); `dw`: blocked weights, overwritten with
// the sum over the images.
struct GradLayout {
  int64_t image, block, row, pixel;
};
using WeightGradKernel = void (*)(const ConvShape& s, int64_t images, const float* x, int64_t x_image,
                                  const float* dy, const GradLayout& dy_layout, float* dw);

// Layout conversions, see pack_activation / unpack_activation below.
using PackActivation = void (*)(const float* x, int64_t c, int64_t h, int64_t w, int64_t dilation,
                                int64_t pad_top, int64_t pad_left, int64_t out_h, int64_t out_w, float* out);
using UnpackActivation = void (*)(const float* blk, int64_t c, int64_t h, int64_t w, const float* bias, float* y);

struct Kernels {
  ForwardKernel forward;
  ForwardStridedKernel forward_strided;
  WeightGradKernel weight_grad;
  PackActivation pack;  // exact copies, so every level packs the same bits
  UnpackActivation unpack;
};
// The kernels of an ISA level; forward == nullptr for Isa::scalar (ops_conv then uses im2col).
// Isa::avx_vnni gets the AVX2 kernels (VNNI has nothing for float), Isa::amx the AVX-512 ones
// (the tiles hold integers only).
Kernels kernels_for(kernels::Isa isa);

// Layout conversions (portable code). pack_activation writes out [blocks(c)][out_h][out_w][B]
// entirely: x[ch][ih][iw] lands at (pad_top + ih*dilation, pad_left + iw*dilation), every other
// position and tail channel is zero (dilation > 1 makes the dilated dy of backward-data).
void pack_activation(const float* x, int64_t c, int64_t h, int64_t w, int64_t dilation, int64_t pad_top,
                     int64_t pad_left, int64_t out_h, int64_t out_w, float* out);
// The same result as pack_activation (dilation 1) from an already blocked image blk
// [blocks(c)][h][w][B]: a copy into the padding, no transposition.
void pad_blocked(const float* blk, int64_t c, int64_t h, int64_t w, int64_t pad_top, int64_t pad_left, int64_t out_h,
                 int64_t out_w, float* out);
// blk[ch/B][j][ch%B] += bias[ch] for ch < c, j < hw.
void add_bias_blocked(float* blk, int64_t c, int64_t hw, const float* bias);
// y[ch][ih][iw] = blk[ch/B][ih][iw][ch%B] (+ bias[ch] when bias is not null), ch < c.
void unpack_activation(const float* blk, int64_t c, int64_t h, int64_t w, const float* bias, float* y);
// w [cout][cin][kh][kw] -> blocked weights [blocks(cout)][blocks(cin)][kh][kw][B_in][B_out];
// flipped: the weights of backward-data, [blocks(cin)][blocks(cout)][kh][kw][B_out][B_in] with
// w[o][i][kh-1-r][kw-1-c] at (r, c). Tails zero.
void pack_weights(const float* w, int64_t cout, int64_t cin, int64_t kh, int64_t kw, bool flipped, float* out);
// Inverse of pack_weights(flipped = false): dw [cout][cin][kh][kw].
void unpack_weights(const float* blk, int64_t cout, int64_t cin, int64_t kh, int64_t kw, float* dw);

// Backward-data by phases, for one conv (shape and weights) and any number of images.
// Phase (a, b), a, b in [0, s): dx rows a, a+s, ... and columns b, b+s, ...; its sub-kernel holds
// the flipped taps fr = fr0 + s*j (fr0 = (kh-1-pad-a) mod s), fc likewise, packed for the forward
// kernel as [blocks(cin)][blocks(cout)][taps_h][taps_w][B_out][B_in]; output (u, v) at tap (j, k)
// reads dy row u + j + dy_row0, column v + k + dy_col0 (in unpadded dy coordinates, padding is
// zero).
struct BackwardDataPhase {
  int64_t row0, col0;        // a, b: the first dx row and column of the phase
  int64_t rows, cols;        // dx rows / columns of the phase: ceil((h - a) / s), ceil((w - b) / s)
  int64_t taps_h, taps_w;    // of the sub-kernel; 0: no dy reaches the phase (its dx is zero)
  int64_t dy_row0, dy_col0;  // may be negative (reads of the zero padding)
  int64_t weights;           // offset of the packed sub-kernel in BackwardDataPlan::weights
};
struct BackwardDataPlan {
  // w [cout][cin][kh][kw]; the forward conv maps x [cin][h][w] to y [cout][ho][wo] with stride
  // and pad (0 <= pad; any pad the forward accepts). Throws lowbit::Error on a bad shape.
  BackwardDataPlan(int64_t cin, int64_t h, int64_t w, int64_t cout, int64_t kh, int64_t kw, int64_t stride,
                   int64_t pad, const float* weights);
  int64_t cin, h, w, cout, kh, kw, stride, pad, ho, wo;
  // The scratch: dy of one image with zero borders, [blocks(cout)][padded_h][padded_w][B], dy
  // pixel (oh, ow) at (pad_top + oh, pad_left + ow).
  int64_t pad_top, pad_left, padded_h, padded_w;
  std::vector<BackwardDataPhase> phases;  // stride * stride of them, a-major
  std::vector<float> weights;
  int64_t scratch_floats() const { return blocks_of(cout) * padded_h * padded_w * kConvBlock; }
};
// dx of one image: dy blocked and unpadded [blocks(cout)][ho][wo][B] (tail channels zero), dx
// blocked [blocks(cin)][h][w][B], written entirely (tail channels zero; rows and columns no dy
// reaches are zero). scratch: plan.scratch_floats() floats, overwritten. k: an ISA level with
// direct kernels (k.forward_strided != nullptr). Bit-identical to conv_reference_backward_data.
void backward_data_image(const Kernels& k, const BackwardDataPlan& plan, const float* dy, float* dx,
                         float* scratch);
// The same from dy already in the scratch layout (zero borders included), e.g. packed there by
// k.pack(dy_nchw, cout, ho, wo, 1, plan.pad_top, plan.pad_left, plan.padded_h, plan.padded_w, buf):
// no copy, and the weight gradient can read that buffer too (GradLayout {image floats,
// padded_h*padded_w*B, padded_w*B, B} from (pad_top, pad_left)). dy_padded is only read.
void backward_data_image_padded(const Kernels& k, const BackwardDataPlan& plan, const float* dy_padded,
                                float* dx);

// Plain-loop references on NCHW (one group, dilation 1), in the summation order above.
// x [n][cin][h][w], w [cout][cin][kh][kw], y [n][cout][ho][wo] (bias not included).
void conv_reference_forward(const float* x, const float* w, float* y, int64_t n, int64_t cin, int64_t h,
                            int64_t wd, int64_t cout, int64_t kh, int64_t kw, int64_t stride, int64_t pad);
// dx [n][cin][h][w] from dy [n][cout][ho][wo] (overwritten).
void conv_reference_backward_data(const float* dy, const float* w, float* dx, int64_t n, int64_t cin,
                                  int64_t h, int64_t wd, int64_t cout, int64_t kh, int64_t kw,
                                  int64_t stride, int64_t pad);
// dw [cout][cin][kh][kw] summed over the n images (overwritten).
void conv_reference_weight_grad(const float* x, const float* dy, float* dw, int64_t n, int64_t cin,
                                int64_t h, int64_t wd, int64_t cout, int64_t kh, int64_t kw,
                                int64_t stride, int64_t pad);

}  // namespace lowbit::direct_conv
