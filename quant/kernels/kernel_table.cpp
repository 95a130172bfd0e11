// kernel_table.cpp: the table of each ISA level this build has (kernel_table.h): what the level
// has, then the gaps filled from the level it falls back to. A build without x86 (core/arch.h) has
// the scalar table only.
#include "quant/kernels/kernel_table.h"

#include <array>
#include <cassert>
#include <iterator>
#include <optional>

#include "core/arch.h"
#include "core/error.h"
#include "quant/kernels/conv_codes_internal.h"
#include "quant/kernels/gemm_internal.h"

namespace lowbit::kernels {

namespace {

constexpr size_t kLevels = std::size(kIsaPreference);

struct Level {
  KernelTable own;  // the entries this level has
  Isa fallback;     // where its gaps come from (itself: none)
};

// One literal per level this build has (core/arch.h: the x86 levels in an x86-64 build only),
// at the index of its Isa; a level the build lacks stays empty.
std::array<std::optional<Level>, kLevels> levels() {
  using detail::ref::gemm_tile;
  std::array<std::optional<Level>, kLevels> all;
  const auto add = [&all](const Level& l) { all[static_cast<size_t>(l.own.isa)] = l; };
  add({{Isa::scalar, detail::ref::kernels(), gemm_tile, nullptr, quantize_codes_reference, nullptr, ""},
       Isa::scalar});
#if LOWBIT_ARCH_X86
  add({{Isa::avx2, detail::avx2::kernels(), detail::avx2::gemm_tile, nullptr, detail::avx2::quantize_codes,
        detail::avx2::peak_probe, "vpmaddubsw + vpmaddwd + vpaddd ymm"},
       Isa::scalar});
  add({{Isa::avx_vnni, detail::avx_vnni::kernels(), detail::avx_vnni::gemm_tile, nullptr, nullptr,
        detail::avx_vnni::peak_probe, "vpdpbusd ymm"},
       Isa::avx2});
  add({{Isa::avx512, detail::avx512::kernels(), detail::avx512::gemm_tile, detail::avx512::gemv_tile,
        detail::avx512::quantize_codes, detail::avx512::peak_probe, "vpdpbusd zmm"},
       Isa::scalar});
  // AMX serves the convolutions; the GEMM, GEMV, quantize loop and probe are avx512's.
  add({{Isa::amx, detail::amx::kernels(), nullptr, nullptr, nullptr, nullptr, ""}, Isa::avx512});
#endif
  for ([[maybe_unused]] Isa isa : kIsaPreference)
    assert(all[static_cast<size_t>(isa)].has_value() == isa_in_build(isa));
  return all;
}

KernelTable complete(const std::array<std::optional<Level>, kLevels>& all, Isa isa) {
  KernelTable t = all[static_cast<size_t>(isa)]->own;
  for (Isa from = all[static_cast<size_t>(isa)]->fallback; from != isa;) {
    const Level& f = *all[static_cast<size_t>(from)];
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
  LOWBIT_CHECK(isa_in_build(isa), "kernel_table: this ", kBuildArch, " build has no ", isa_name(isa),
               " level (available: ", supported_isa_names(), ")");
  static const std::array<KernelTable, kLevels> tables = [] {
    const std::array<std::optional<Level>, kLevels> all = levels();
    std::array<KernelTable, kLevels> t;
    for (Isa isa : kIsaPreference)
      if (all[static_cast<size_t>(isa)]) t[static_cast<size_t>(isa)] = complete(all, isa);
    return t;
  }();
  return tables[static_cast<size_t>(isa)];
}

}  // namespace lowbit::kernels
