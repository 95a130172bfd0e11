// gemm.h: packed low-bit integer GEMM / GEMV with a fused per-channel epilogue (public API).
//
// Computes, for every row m of the activations and every output channel n of the weights,
//   acc[m][n]  = sum_k A[m][k] * W[n][k]                       (int32, exact; codes unsigned)
//   acc'[m][n] = acc_mul * acc[m][n] + rowsum_mul * sum_k A[m][k]   (integer row-sum correction)
// then one of
//   int32 : out[m][n] = acc'
//   float : out[m][n] = fl(fl(float(acc') * scale[n]) + bias[n])          (two roundings, no FMA)
//   codes : out[m][n] = clamp(nearbyint(fl(fl(float(acc') * scale[n]) + bias[n])), 0, max_code_out)
// with round-half-to-even, bit-exact in every ISA (scalar reference = ground truth).
// Weights W are b_w-bit codes, activations A are b_a-bit codes, b in {2, 4, 8} (zero point 0).
// Signed / odd weight grids: see offset_signed_weight_codes in packing.h for acc_mul/rowsum_mul.
//
// Overflow guard (checked, throws lowbit::Error, never wraps silently):
//   k_pad * max_code(b_w) * max_code(b_a) * |acc_mul| + |rowsum_mul| * k_pad * max_code(b_a) < 2^31
// plus the (looser) bound of the VNNI kernels' scaled accumulators (gemm_k_limit()). Split K
// (two GEMMs, add the int32 results) when a layer is larger than that.
//
// Rows m <= kGemvMaxRows take the GEMV kernels (weights unpacked in registers, streamed once
// from memory; groups of kGemvRowGroup rows per pass over an L2-sized chunk of channels);
// more rows take the GEMM kernels (a 32-channel weight panel unpacked into an L2-resident buffer
// and reused by every row of an M block). Parallel over output tiles with lowbit::parallel_for.
#pragma once
#include <cstdint>

#include "core/cpu_features.h"
#include "quant/kernels/packing.h"

namespace lowbit::kernels {

inline constexpr int64_t kGemvMaxRows = 8;  // up to 8 rows: GEMV kernels (AVX-512)
inline constexpr int64_t kGemvRowGroup = 4;  // rows per GEMV pass (accumulators stay in zmm)

enum class EpilogueKind { int32, float32, codes };

struct Epilogue {
  EpilogueKind kind = EpilogueKind::int32;
  int32_t acc_mul = 1;     // acc' = acc_mul * acc + rowsum_mul * rowsum(A[m])
  int32_t rowsum_mul = 0;
  const float* scale = nullptr;  // float / codes: A_c, n entries (required)
  const float* bias = nullptr;   // float / codes: B_c, n entries (nullptr = 0)
  int max_code_out = 0;          // codes: n_next = 2^bits_next - 1 (1..255)
};

// out: int32_t* (int32), float* (float32) or uint8_t* (codes), row-major m x n with leading
// dimension ldo >= n. Uses the active ISA (active_isa_level()).
void gemm(const PackedActivations& a, const PackedWeights& w, const Epilogue& ep, void* out,
          int64_t ldo);
// Same, at an explicit ISA (tests/benchmarks); throws when the CPU lacks it.
void gemm_at(Isa isa, const PackedActivations& a, const PackedWeights& w, const Epilogue& ep,
             void* out, int64_t ldo);
// The plain C++ ground truth (no packing tricks: reads codes one by one).
void gemm_reference(const PackedActivations& a, const PackedWeights& w, const Epilogue& ep,
                    void* out, int64_t ldo);

// Convenience wrappers.
inline void gemm_s32(const PackedActivations& a, const PackedWeights& w, int32_t* out, int64_t ldo) {
  gemm(a, w, Epilogue{}, out, ldo);
}

// Largest padded K accepted for this bit-width pair and correction (the guard above).
int64_t gemm_k_limit(int wbits, int abits, int32_t acc_mul = 1, int32_t rowsum_mul = 0);

// Not implemented yet: a bit-serial w2a2 variant (AND + VPOPCNTDQ over bit planes); w2a2 runs
// on the vpdpbusd kernels. cpu_has_avx512_vpopcntdq() is there for it.
}  // namespace lowbit::kernels
