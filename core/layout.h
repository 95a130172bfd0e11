// layout.h: how an activation tensor's floats are arranged in its storage, and the conversions.
//   Layout::nchw     the row-major order of the shape (every tensor unless an op says otherwise).
//   Layout::nchw16c  a 4-D [N, C, H, W] tensor with C a positive multiple of 16, each image stored
//                    as [C/16][H][W][16]: the 16 channels of a pixel side by side. This is the order
//                    the direct convolution computes in (core/conv_direct.h), and the one in which
//                    batch norm, ReLU, the residual add and pooling vectorise across channels, so a
//                    CNN's activations stay in it from the first convolution to the pooling at the
//                    model's end (docs/training-speed.md).
// A tensor's layout is a property of its storage (views share it). Tensor::raw_data() gives the
// floats as stored, for ops that know the layout; Tensor::data() always gives the nchw order,
// converting the storage once (for every tensor sharing it) when it is blocked, so an op that does
// not know about layouts stays correct and only pays one conversion.
#pragma once
#include <cstdint>

#include "core/shape.h"

namespace lowbit {

class Tensor;

enum class Layout : uint8_t { nchw, nchw16c };

constexpr int64_t kLayoutBlock = 16;  // channels per block of nchw16c

const char* layout_name(Layout layout);  // "nchw" | "nchw16c"

// True when a tensor of this shape can be stored as nchw16c: 4-D, C a positive multiple of 16.
bool can_block(const Shape& shape);

// Conversions of `images` images of c channels (a multiple of 16) x hw pixels, src != dst.
void nchw_to_nchw16c(const float* src, float* dst, int64_t images, int64_t c, int64_t hw);
void nchw16c_to_nchw(const float* src, float* dst, int64_t images, int64_t c, int64_t hw);

// x in `layout` (x itself when it already is); the gradient comes back in x's layout. nchw16c
// needs can_block(x.shape()).
Tensor to_layout(const Tensor& x, Layout layout);

}  // namespace lowbit
