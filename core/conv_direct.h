// conv_direct.h: direct float convolution over a channel-blocked layout (no im2col), the fast
// path of core/ops_conv.cpp for groups = 1, dilation = 1, padding <= kernel - 1.
//
// Layouts (one image; B = kConvBlock = 16 channels per block, channel tails zero):
//   blocked activation  A[cb][h][w][B]           (cb = ceil(C / B))
//   blocked weights     Wt[ob][ib][kh][kw][B_in][B_out]
// Forward    y  = conv(x, w, stride s, pad p):  x packed with its zero padding into A, one kernel.
// Backward-data dx = conv(dilate_s(dy) padded by K-1-p, w flipped in kh/kw with in/out swapped,
//               stride 1): the same kernel, so dx needs no scatter (for s = 2 three in four of
//               its products read inserted zeros).
// Backward-weights dw[ob][ib][kh][kw][i][o] = sum over images, oh, ow of
//               A_x[ib][oh*s + kh][ow*s + kw][i] * A_dy[ob][oh][ow][o].
//
// Summation order (what makes every ISA level bit-identical to the plain reference):
//   forward / backward-data: per output, acc = 0, then for ib, kh, kw, i (i < channels of the
//   block): acc = fma(in, w, acc); the bias is added after.
//   backward-weights: per weight, acc = 0, then for image, oh, ow: acc = fma(x, dy, acc).
// conv_reference_* compute exactly these sums on NCHW tensors with plain loops (std::fma); the
// AVX2 and AVX-512 kernels (conv_direct_kernels.inc) must equal them bit for bit.
#pragma once
#include <cstdint>

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

// The ISA kernels. `x` blocked [in_blocks][in_h][in_w][B], `w` blocked weights, `y` blocked
// [out_blocks][out_h][out_w][B] (written entirely).
using ForwardKernel = void (*)(const ConvShape& s, const float* x, const float* w, float* y);
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
// The same result as pack_activation from an already blocked image blk [blocks(c)][h][w][B] (a
// copy into the padding, no transposition).
void pad_blocked(const float* blk, int64_t c, int64_t h, int64_t w, int64_t dilation, int64_t pad_top,
                 int64_t pad_left, int64_t out_h, int64_t out_w, float* out);
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
