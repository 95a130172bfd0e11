// test_quantize_codes.cpp: the SIMD float -> code loops (quant/kernels/quantize_codes.h) equal
// their scalar reference at every ISA this CPU has, at ties, signed zeros, the clip bounds and
// beyond, for every tail length.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "quant/kernels/quantize_codes.h"
#include "common/isa_levels.h"

using namespace lowbit::kernels;

TEST_CASE("quantize_codes: every level equals the scalar reference") {
  const CodeMap maps[] = {
      {CodeMap::Form::clip_then_multiply, 0.f, 2.75f, 3.f / 2.75f},   // PACT 2-bit
      {CodeMap::Form::clip_then_multiply, 0.f, 1.f, 15.f},            // DoReFa 4-bit
      {CodeMap::Form::clip_then_multiply, 0.f, 6.1f, 255.f / 6.1f},   // PACT 8-bit
      {CodeMap::Form::divide_then_clip, 0.f, 3.f, 0.37f},             // LSQ 2-bit
      {CodeMap::Form::divide_then_clip, 0.f, 15.f, 0.1f},             // LSQ 4-bit
  };
  std::mt19937 rng(3);
  for (const CodeMap& m : maps) {
    std::vector<float> x;
    // Ties of the rounding (k + 0.5 in code units, both forms), the bounds, zeros, outliers.
    for (int k = -2; k <= 256; ++k) {
      const float code = static_cast<float>(k) + 0.5f;
      x.push_back(m.form == CodeMap::Form::clip_then_multiply ? code / m.factor : code * m.factor);
    }
    for (float v : {0.f, -0.f, m.lo, m.hi, -m.hi, 2 * m.hi, 1e30f, -1e30f}) x.push_back(v);
    std::normal_distribution<float> nd(m.hi / 2, m.hi);
    for (int i = 0; i < 2000; ++i) x.push_back(nd(rng));
    std::vector<uint8_t> want(x.size());
    quantize_codes_reference(m, x.data(), static_cast<int64_t>(x.size()), want.data());
    for (Isa isa : lowbit::test::available_isas()) {
      CAPTURE(std::string(isa_name(isa)));
      for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{8}, int64_t{15}, int64_t{17}, int64_t{31},
                        static_cast<int64_t>(x.size())}) {
        std::vector<uint8_t> got(static_cast<size_t>(n) + 1, 0xCD);
        quantize_codes_at(isa, m, x.data(), n, got.data());
        CHECK(std::vector<uint8_t>(got.begin(), got.begin() + n) == std::vector<uint8_t>(want.begin(), want.begin() + n));
        CHECK(got[static_cast<size_t>(n)] == 0xCD);  // nothing written past the end
      }
    }
  }
}
