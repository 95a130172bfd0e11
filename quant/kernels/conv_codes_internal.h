// conv_codes_internal.h: the contract between conv_codes.cpp (checks, tables, threads, the
// scalar reference) and the per-ISA kernels (conv_codes_avx512.cpp, conv_codes_amx.cpp,
// conv_codes_avx2.cpp, conv_codes_avxvnni.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "quant/kernels/conv_codes.h"

namespace lowbit::kernels::detail {

struct ConvCodesProblem {
  const uint8_t* x = nullptr;
  ConvCodesShape shape;
  const ConvCodesWeights* w = nullptr;
  Epilogue ep;
  const float* scale_pad = nullptr;  // n_blocks * 16 entries, zero padded
  const float* bias_pad = nullptr;
  void* out = nullptr;
  int64_t ldo = 0;
  ConvCodesFusion fuse;
  // Split weights (w->split), ymm kernels: the window sum of output pixel q is
  // window_sums[q - window_pixel0]; the epilogue forms acc' = 2 * acc + window_term * window_sum.
  const int32_t* window_sums = nullptr;
  int64_t window_pixel0 = 0;
};

// Byte offset of each k-group (4 channels of one tap, k = (kh*kernel + kw)*C + c) from a
// pixel's tap (0, 0) in the bordered image: the kernels' flat loop over K reads codes through it.
inline void group_offsets(const ConvCodesProblem& p, std::vector<int32_t>& out) {
  const int64_t C = p.shape.channels, K = p.w->kernel, line = p.shape.width * C;
  out.clear();
  for (int64_t kh = 0; kh < K; ++kh)
    for (int64_t kw = 0; kw < K; ++kw)
      for (int64_t c = 0; c < C; c += 4) out.push_back(static_cast<int32_t>(kh * line + kw * C + c));
}

// The rules of the kernel tables (conv_codes.h).
bool always_applies(const ConvCodesWeights& w, int act_bits);
bool maddubs_exact(const ConvCodesWeights& w, int act_bits);     // 2 * max_code * max|s| <= 32767
bool pair_lut_applies(const ConvCodesWeights& w, int act_bits);  // 2-bit codes and pair tables built

// The row kernels' driver: output rows of the whole batch in parallel tasks, each calling
// rows_fn(task, row0, row1); with window_sums_fn (kernels that do not sum windows in their
// tiles), split weights get each task's window sums from it first.
using RowsFn = void (*)(const ConvCodesProblem& p, int64_t row0, int64_t row1);
using WindowSumsFn = void (*)(const ConvCodesProblem& p, int64_t row0, int64_t row1, int32_t* out);
void run_rows(const ConvCodesProblem& p, int64_t images, RowsFn rows_fn, WindowSumsFn window_sums_fn);
// run_rows as a table row's call: {"avx512.vpdpbusd", rule, run_rows_of<conv_codes_rows, nullptr>}.
template <RowsFn rows_fn, WindowSumsFn window_sums_fn>
void run_rows_of(const ConvCodesProblem& p, int64_t images) {
  run_rows(p, images, rows_fn, window_sums_fn);
}

// Output rows [row0, row1) of the whole batch, a row = (image, oh): every ow, every channel.
// kernels(): each level's table, preferred first; defined in the level's own file.
namespace ref {
void conv_codes_rows(const ConvCodesProblem& p, int64_t row0, int64_t row1);
void window_sums(const ConvCodesProblem& p, int64_t row0, int64_t row1, int32_t* out);
ConvCodesKernelTable kernels();
}  // namespace ref
namespace avx2 {
void conv_codes_rows(const ConvCodesProblem& p, int64_t row0, int64_t row1);
// ref::window_sums in AVX2 (4-channel stride-1 layers; the others through ref); the ymm levels'.
void window_sums(const ConvCodesProblem& p, int64_t row0, int64_t row1, int32_t* out);
// The lookup-table kernel of 2-bit codes (conv_codes_pairlut_avx2.cpp), the whole call.
void conv_codes_pair_lut(const ConvCodesProblem& p, int64_t images);
// The byte multiply with int16 sums (conv_codes_int16_avx2.cpp) and its rule.
void conv_codes_maddubs16(const ConvCodesProblem& p, int64_t images);
bool maddubs16_applies(const ConvCodesWeights& w, int act_bits);
ConvCodesKernelTable kernels();
}  // namespace avx2
namespace avx_vnni {
void conv_codes_rows(const ConvCodesProblem& p, int64_t row0, int64_t row1);
ConvCodesKernelTable kernels();
}  // namespace avx_vnni
namespace avx512 {
void conv_codes_rows(const ConvCodesProblem& p, int64_t row0, int64_t row1);
// The epilogue of finished accumulators: sums holds rows x nbs blocks of 16 int32 (row-major,
// row stride nbs * 16) for output pixels out_pixel0 .. + rows and channel blocks nb .. + nbs;
// window (split weights): each pixel's window sum, else nullptr. The AMX kernel's too.
void epilogue_tile(const ConvCodesProblem& p, const int32_t* sums, const int32_t* window, int rows, int nbs,
                   int64_t nb, int64_t out_pixel0);
ConvCodesKernelTable kernels();
}  // namespace avx512
namespace amx {
void conv_codes_rows(const ConvCodesProblem& p, int64_t row0, int64_t row1);
ConvCodesKernelTable kernels();
}  // namespace amx

}  // namespace lowbit::kernels::detail
