// gemm_internal.h: the contract between the dispatcher (gemm.cpp) and the per-ISA kernel
// translation units (gemm_ref.cpp, gemm_avx2.cpp, gemm_avxvnni.cpp, gemm_avx512.cpp). Not a
// public header.
// Each ISA TU is compiled with its own -m flags; everything it defines lives in its own
// namespace so no inline function compiled for AVX-512 can be picked by the linker for another TU.
#pragma once
#include <cstdint>

#include "quant/kernels/gemm.h"

namespace lowbit::kernels::detail {

struct GemmProblem {
  const PackedActivations* a = nullptr;
  const PackedWeights* w = nullptr;
  Epilogue ep;
  void* out = nullptr;
  int64_t ldo = 0;
  // Per-channel int32 added to the raw dot product before the epilogue (n_blocks*16 entries):
  // 128 * weight_row_sums[n] when activations are fed as signed bytes a - 128 (8-bit), else 0.
  const int32_t* channel_corr = nullptr;
  const float* scale_pad = nullptr;  // n_blocks*16 entries, zero padded (float/codes)
  const float* bias_pad = nullptr;   // n_blocks*16 entries, zero padded
};

// Output rows [m0, m1) x channel blocks [nb0, nb1) of 16 channels each.
namespace ref {
void gemm_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1);
// Scalar epilogue for one row r and 16-channel block nb, given 16 finished accumulators
// (dot product + channel_corr): shared ground truth of the formula in gemm.h.
void epilogue_block(const GemmProblem& p, int64_t r, int64_t nb, const int32_t* acc16);
}  // namespace ref
// peak_probe(iters): a register-only loop of independent multiply-accumulates at the ISA's
// best rate (12 zmm / ymm vpdpbusd chains, 8 vpmaddubsw+vpmaddwd+vpaddd chains); returns the
// MACs done.
// The benchmark times it next to each kernel, so %-of-peak survives a shared, time-sliced CPU.
namespace avx2 {
void gemm_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1);
double peak_probe(int64_t iters);
}
namespace avx_vnni {  // the avx2 tiles with VEX vpdpbusd
void gemm_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1);
double peak_probe(int64_t iters);
}
namespace avx512 {
void gemm_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1);
void gemv_tile(const GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1);
double peak_probe(int64_t iters);
}  // namespace avx512

}  // namespace lowbit::kernels::detail
