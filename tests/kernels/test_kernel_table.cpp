// test_kernel_table.cpp: the per-level kernel tables (quant/kernels/kernel_table.h): every level's
// table is complete after the fallback, a level inherits exactly the entries it lacks, and a level
// outside the build (the x86 levels of an aarch64 build, core/arch.h) has no table and cannot be chosen.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

#include "core/arch.h"
#include "core/error.h"
#include "quant/kernels/kernel_table.h"

using namespace lowbit::kernels;

namespace {
// doctest cannot print function pointers: compare them into a bool first.
template <class F>
bool same(F a, F b) { return a == b; }
template <class F>
bool none(F f) { return f == nullptr; }
}  // namespace

TEST_CASE("every level's table is complete; the gaps come from its fallback level") {
  for (Isa isa : kIsaPreference) {
    if (!isa_in_build(isa)) continue;
    CAPTURE(std::string(isa_name(isa)));
    const KernelTable& t = kernel_table(isa);
    CHECK(t.isa == isa);
    CHECK(!none(t.gemm_tile));
    CHECK(!none(t.quantize_codes));
    REQUIRE(t.conv.count >= 1);
    for (int i = 0; i < t.conv.count; ++i) {
      const std::string name = t.conv.rows[i].name;
      CHECK(name.rfind(std::string(isa_name(isa)) + ".", 0) == 0);  // a level's own rows
      CHECK(!none(t.conv.rows[i].applies));
      CHECK(!none(t.conv.rows[i].run));
    }
    CHECK(none(t.peak_probe) == (isa == Isa::scalar));
  }
  CHECK(none(kernel_table(Isa::scalar).gemv_tile));
  CHECK(same(kernel_table(Isa::scalar).quantize_codes, KernelTable::QuantizeFn{quantize_codes_reference}));
}

TEST_CASE("the x86 levels inherit exactly the entries they lack") {
  if (!LOWBIT_ARCH_X86) {
    MESSAGE((std::string("skipped: this ") + lowbit::kBuildArch + " build has no x86 levels"));
    return;
  }
  // amx: its own convolution, everything else avx512's.
  CHECK(same(kernel_table(Isa::amx).gemm_tile, kernel_table(Isa::avx512).gemm_tile));
  CHECK(same(kernel_table(Isa::amx).gemv_tile, kernel_table(Isa::avx512).gemv_tile));
  CHECK(same(kernel_table(Isa::amx).quantize_codes, kernel_table(Isa::avx512).quantize_codes));
  CHECK(same(kernel_table(Isa::amx).peak_probe, kernel_table(Isa::avx512).peak_probe));
  CHECK(kernel_table(Isa::amx).conv.rows != kernel_table(Isa::avx512).conv.rows);
  // avx_vnni: its own GEMM, convolution and probe; AVX2's quantize loop.
  CHECK(same(kernel_table(Isa::avx_vnni).quantize_codes, kernel_table(Isa::avx2).quantize_codes));
  CHECK(!same(kernel_table(Isa::avx_vnni).gemm_tile, kernel_table(Isa::avx2).gemm_tile));
  // Only the AVX-512 levels have the streaming GEMV; the others serve every M with GEMM tiles.
  CHECK(!none(kernel_table(Isa::avx512).gemv_tile));
  CHECK(none(kernel_table(Isa::avx2).gemv_tile));
}

TEST_CASE("a level outside the build has no table and cannot be chosen") {
  for (Isa isa : kIsaPreference) {
    CAPTURE(std::string(isa_name(isa)));
    CHECK(isa_in_build(isa) == (isa == Isa::scalar || LOWBIT_ARCH_X86));
    if (isa_in_build(isa)) continue;
    CHECK(!isa_supported(isa));
    const std::string no_table = std::string("build has no ") + isa_name(isa) + " level";
    CHECK_THROWS_WITH_AS(kernel_table(isa), doctest::Contains(no_table.c_str()), lowbit::Error);
    const std::string no_level =
        std::string("names a level this ") + lowbit::kBuildArch + " build does not have (available: scalar)";
    CHECK_THROWS_WITH_AS(resolve_isa(isa_name(isa)), doctest::Contains(no_level.c_str()), lowbit::Error);
    CHECK_THROWS_AS(set_active_isa(isa), lowbit::Error);
  }
  if (!LOWBIT_ARCH_X86) {
    CHECK(detected_isa() == Isa::scalar);
    CHECK(supported_isa_names() == "scalar");
  }
}
