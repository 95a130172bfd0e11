// im2col_packed.h: builds the GEMM's packed activation matrix (quant/kernels/packing.h layout:
// per row, codes in k order as little-endian bit fields, 64-byte aligned row stride, plus
// per-row code sums) straight from NHWC codes, one byte per code, without the intermediate
// one-byte-per-code im2col matrix that pack_activations would re-read.
//
// Row m = (image, oh, ow) of a conv holds, for k = (kh * kernel + kw) * C + c, the input code
// x[image][oh*stride - padding + kh][ow*stride - padding + kw][c], or pad_code outside the image;
// it equals pack_activations(im2col(x)) bit for bit, row sums included.
// When a pixel's codes fill whole bytes (C * bits % 8 == 0) and the row stride leaves a word of
// slack, each input pixel is packed once into a zero-point-bordered image and a row is kernel
// contiguous copies of kernel*C codes; other shapes gather each row's codes, then pack them.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/kernels/packing.h"

namespace lowbit::intq {

struct ConvGeometry {
  int64_t channels = 1, height = 1, width = 1;  // input, per image, NHWC
  int64_t kernel = 1, stride = 1, padding = 0;
  int64_t out_height = 1, out_width = 1;
  int bits = 8;          // packed width of the codes: 2, 4 or 8
  uint8_t pad_code = 0;  // the input zero point
  int64_t k() const { return kernel * kernel * channels; }
};

// Reused buffers (a bordered packed image and its per-pixel code sums); keep one per thread.
struct Im2colScratch {
  std::vector<uint8_t> pixels;
  std::vector<int32_t> pixel_sums;
};

// Shapes `a` for m rows of k codes at `bits` (the same k_pad and row stride as
// pack_activations), reallocating only when its buffers are too small: a reused
// PackedActivations costs no allocation per call. Row contents are left to the caller.
void prepare_packed_activations(kernels::PackedActivations& a, int64_t m, int64_t k, int bits);

// The packed im2col matrix of `images` NHWC images x into `a` (m = images * out_h * out_w).
void im2col_packed(const uint8_t* x, int64_t images, const ConvGeometry& g, Im2colScratch& scratch,
                   kernels::PackedActivations& a);

// Packs m rows of k codes (leading dimension ld) into `a`: pack_activations without the
// allocation and the code-range check (the runtime's codes come out of clamping epilogues).
void pack_rows(const uint8_t* codes, int64_t m, int64_t k, int64_t ld, int bits, kernels::PackedActivations& a);

}  // namespace lowbit::intq
