// test_kernel_table.cpp: the per-level kernel tables (quant/kernels/kernel_table.h): every level's
// table is complete after the fallback, and a level inherits exactly the entries it lacks.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

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
  CHECK(none(kernel_table(Isa::scalar).gemv_tile));
  CHECK(same(kernel_table(Isa::scalar).quantize_codes, KernelTable::QuantizeFn{quantize_codes_reference}));
}
