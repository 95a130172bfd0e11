// kernel_table.h: every integer kernel of one ISA level in one table, chosen once per call from
// the level (ggml's arch-fallback idea). Each level fills the entries it has (kernel_table.cpp,
// one literal per level, naming functions of that level's own files); an entry a level lacks
// (nullptr, or no convolution rows) is inherited from the level it falls back to:
//   amx -> avx512 -> scalar,  avx_vnni -> avx2 -> scalar
// so the amx level is avx512 with its own convolution rows, and avx_vnni borrows AVX2's
// quantize loop. A new level, or a new kernel of a level, is a row here and functions in that
// level's files; the dispatchers (gemm.cpp, conv_codes.cpp, quantize_codes.cpp, the benchmarks)
// only read the table.
#pragma once
#include <cstdint>

#include "core/cpu_features.h"
#include "quant/kernels/conv_codes.h"
#include "quant/kernels/quantize_codes.h"

namespace lowbit::kernels {

namespace detail { struct GemmProblem; }

struct KernelTable {
  // Output rows [m0, m1) x 16-channel blocks [nb0, nb1) of a packed GEMM (gemm_internal.h).
  using GemmTileFn = void (*)(const detail::GemmProblem& p, int64_t m0, int64_t m1, int64_t nb0, int64_t nb1);
  using QuantizeFn = void (*)(const CodeMap& map, const float* x, int64_t count, uint8_t* out);
  using ProbeFn = double (*)(int64_t iters);  // a register-only multiply-accumulate loop; its MACs

  Isa isa = Isa::scalar;
  ConvCodesKernelTable conv{nullptr, 0};  // conv_codes rows, preferred first
  GemmTileFn gemm_tile = nullptr;
  GemmTileFn gemv_tile = nullptr;         // the few-row GEMV (weights streamed once); none: gemm_tile
  QuantizeFn quantize_codes = nullptr;
  ProbeFn peak_probe = nullptr;           // the benchmarks' peak; none at the scalar level
  const char* probe_name = "";            // what the probe loop runs, e.g. "vpdpbusd zmm"
};

// The complete table of a level (gaps filled along the fallback chain). The level need not be
// supported by this CPU: callers check isa_supported before running anything from it. It must be
// in the build (isa_in_build: a build without x86 has the scalar table only); otherwise throws.
const KernelTable& kernel_table(Isa isa);

}  // namespace lowbit::kernels
