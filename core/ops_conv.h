// ops_conv.h: 2-D convolution (NCHW) via im2col + OpenBLAS sgemm.
// y[n, co, oh, ow] = b[co] + sum_{ci in group(co), kh, kw} w[co, ci, kh, kw] *
//                    x[n, g*Cin/G + ci, oh*stride - pad + kh*dil, ow*stride - pad + kw*dil]
// with zero padding; Hout = (H + 2*pad - dil*(KH-1) - 1)/stride + 1 (same for W).
// Images are processed in chunks whose columns sit side by side in one im2col matrix, so each
// sgemm is large enough to run near peak; chunks run in parallel (TBB), weight gradients are
// reduced over chunks in a fixed order (deterministic for a given thread count).
#pragma once
#include <cstdint>

#include "core/fused_activation.h"
#include "core/tensor.h"

namespace lowbit {

struct Conv2dOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t groups = 1;
};

// x [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW], bias [Cout] or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt = {});
// conv2d(activation(x, input_activation), ...) with the activation applied while the direct path
// packs x, and its gradient while backward-data's result is in cache (an activation quantizer's
// passes over memory disappear); the gradients of x, weight, bias and the activation's parameter.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt,
              const FusedActivation& input_activation);

// Output spatial size for one dimension; throws when the kernel does not fit.
int64_t conv_output_size(int64_t in, int64_t kernel, const Conv2dOptions& opt);

// Lower one image (channels [C, H, W]) to columns: col[(c*KH + kh)*KW + kw, j0 + oh*Wo + ow],
// rows of length ld. Zero where the window reads padding. Exposed for the integer runtime.
void im2col(const float* x, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
            const Conv2dOptions& opt, int64_t ho, int64_t wo, float* col, int64_t ld);

}  // namespace lowbit
