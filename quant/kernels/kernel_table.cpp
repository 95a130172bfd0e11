// kernel_table.cpp: the table of each ISA level (kernel_table.h): what the level has, then the
// gaps filled from the level it falls back to.
#include "quant/kernels/kernel_table.h"

#include <array>

#include "quant/kernels/conv_codes_internal.h"
#include "quant/kernels/gemm_internal.h"

namespace lowbit::kernels {

namespace {

struct Level {
  KernelTable own;  // the entries this level has
  Isa fallback;     // where its gaps come from (itself: none)
};

// One literal per level. Order of the array: the Isa enum's.
std::array<Level, 5> levels() {
  using detail::ref::gemm_tile;
  return {{
      {{Isa::scalar, detail::ref::kernels(), gemm_tile, nullptr, quantize_codes_reference, nullptr, ""},
       Isa::scalar},
      {{Isa::avx2, detail::avx2::kernels(), detail::avx2::gemm_tile, nullptr, detail::avx2::quantize_codes,
        detail::avx2::peak_probe, "vpmaddubsw + vpmaddwd + vpaddd ymm"},
       Isa::scalar},
      {{Isa::avx_vnni, detail::avx_vnni::kernels(), detail::avx_vnni::gemm_tile, nullptr, nullptr,
        detail::avx_vnni::peak_probe, "vpdpbusd ymm"},
       Isa::avx2},
      {{Isa::avx512, detail::avx512::kernels(), detail::avx512::gemm_tile, detail::avx512::gemv_tile,
        detail::avx512::quantize_codes, detail::avx512::peak_probe, "vpdpbusd zmm"},
       Isa::scalar},
      // AMX serves the convolutions; the GEMM, GEMV, quantize loop and probe are avx512's.
      {{Isa::amx, detail::amx::kernels(), nullptr, nullptr, nullptr, nullptr, ""}, Isa::avx512},
  }};
}

KernelTable complete(const std::array<Level, 5>& all, Isa isa) {
  KernelTable t = all[static_cast<size_t>(isa)].own;
  for (Isa from = all[static_cast<size_t>(isa)].fallback; from != isa;) {
    const Level& f = all[static_cast<size_t>(from)];
    if (t.conv.count == 0) t.conv = f.own.conv;
    if (!t.gemm_tile) t.gemm_tile = f.own.gemm_tile;
    if (!t.gemv_tile) t.gemv_tile = f.own.gemv_tile;
    if (!t.quantize_codes) t.quantize_codes = f.own.quantize_codes;
    if (!t.peak_probe) {
      t.peak_probe = f.own.peak_probe;
      t.probe_name = f.own.probe_name;
    }
    if (f.fallback == from) break;
    from = f.fallback;
  }
  return t;
}

}  // namespace

const KernelTable& kernel_table(Isa isa) {
  static const std::array<KernelTable, 5> tables = [] {
    const std::array<Level, 5> all = levels();
    std::array<KernelTable, 5> t;
    for (Isa isa : kIsaPreference) t[static_cast<size_t>(isa)] = complete(all, isa);
    return t;
  }();
  return tables[static_cast<size_t>(isa)];
}

}  // namespace lowbit::kernels
