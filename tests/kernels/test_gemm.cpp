// test_gemm.cpp: packed low-bit GEMM/GEMV kernels against the scalar reference, bit-exactly,
// for every ISA this CPU has (scalar, avx2, avx_vnni, avx512, amx; the rest reported as skipped);
// packing round trips; the overflow guard; LOWBIT_ISA parsing and dispatch; the quick
// benchmark's JSON at every level.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/threading.h"
#include "quant/kernels/bench_gemm.h"
#include "quant/kernels/gemm.h"
#include "common/isa_levels.h"

using namespace lowbit::kernels;

namespace {

enum class Fill { random, all_max, alternating, zeros };

std::vector<uint8_t> make_codes(int64_t rows, int64_t k, int bits, Fill fill, uint32_t seed) {
  std::vector<uint8_t> v(static_cast<size_t>(rows * k));
  std::mt19937 rng(seed);
  const int mx = max_code(bits);
  for (int64_t i = 0; i < rows * k; ++i) {
    switch (fill) {
      case Fill::random: v[i] = static_cast<uint8_t>(rng() % (mx + 1)); break;
      case Fill::all_max: v[i] = static_cast<uint8_t>(mx); break;
      case Fill::alternating: v[i] = static_cast<uint8_t>(((i / k) + (i % k)) % 2 ? mx : 0); break;
      case Fill::zeros: v[i] = 0; break;
    }
  }
  return v;
}

// Independent ground truth straight from the unpacked codes (int64, no packing involved).
std::vector<int64_t> naive_dot(const std::vector<uint8_t>& a, const std::vector<uint8_t>& w, int64_t m,
                               int64_t n, int64_t k) {
  std::vector<int64_t> c(static_cast<size_t>(m * n), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t s = 0;
      for (int64_t t = 0; t < k; ++t) s += int64_t(a[i * k + t]) * int64_t(w[j * k + t]);
      c[i * n + j] = s;
    }
  return c;
}

using lowbit::test::available_isas;

struct Shape { int64_t m, n, k; };
const Shape kShapes[] = {{1, 1, 1},    {3, 17, 63},  {17, 65, 3},  {63, 3, 65},  {65, 63, 17},
                         {1000, 17, 65}, {5, 1000, 63}, {3, 65, 1000}, {2, 3, 1000}, {4, 17, 1000},
                         {9, 33, 144},  {1, 63, 17},  {65, 65, 65}};
const int kBits[] = {2, 4, 8};

// Runs every ISA on one problem and every epilogue; checks against the reference + naive.
void check_problem(int64_t m, int64_t n, int64_t k, int wb, int ab, Fill fill, uint32_t seed) {
  CAPTURE(m); CAPTURE(n); CAPTURE(k); CAPTURE(wb); CAPTURE(ab); CAPTURE(static_cast<int>(fill));
  const auto wc = make_codes(n, k, wb, fill, seed);
  const auto ac = make_codes(m, k, ab, fill == Fill::alternating ? Fill::alternating : fill, seed + 1);
  const PackedWeights w = pack_weights(wc.data(), n, k, k, wb);
  const PackedActivations a = pack_activations(ac.data(), m, k, k, ab);
  const auto truth = naive_dot(ac, wc, m, n, k);

  std::mt19937 rng(seed + 2);
  std::uniform_real_distribution<float> U(-1.f, 1.f);
  const float range = static_cast<float>(k * max_code(wb) * max_code(ab));
  std::vector<float> scale(n), bias(n), half(n, 0.5f);
  for (int64_t j = 0; j < n; ++j) {
    scale[j] = (0.5f + 0.5f * U(rng)) * 30.f / std::max(1.f, range) * 4.f;
    bias[j] = 3.f * U(rng);
  }
  // Reference int32 vs naive int64: the reference itself is right.
  std::vector<int32_t> ref32(m * n), got32(m * n);
  gemm_reference(a, w, Epilogue{}, ref32.data(), n);
  for (int64_t i = 0; i < m * n; ++i) REQUIRE(int64_t(ref32[i]) == truth[i]);

  struct Variant { Epilogue ep; const char* name; };
  std::vector<Variant> variants;
  variants.push_back({Epilogue{}, "int32"});
  Epilogue corr; corr.acc_mul = 2; corr.rowsum_mul = -max_code(wb); variants.push_back({corr, "int32+rowsum"});
  Epilogue f; f.kind = EpilogueKind::float32; f.scale = scale.data(); f.bias = bias.data();
  variants.push_back({f, "float"});
  Epilogue fc = f; fc.acc_mul = 2; fc.rowsum_mul = -max_code(wb); fc.bias = nullptr;
  variants.push_back({fc, "float+rowsum,nobias"});
  Epilogue q = f; q.kind = EpilogueKind::codes; q.max_code_out = 15; variants.push_back({q, "codes"});
  Epilogue ties; ties.kind = EpilogueKind::codes; ties.scale = half.data(); ties.max_code_out = 255;
  variants.push_back({ties, "codes half-to-even ties"});

  for (const auto& v : variants) {
    CAPTURE(std::string(v.name));
    const size_t bytes = static_cast<size_t>(m * n) * 4;
    std::vector<uint8_t> ref(bytes + 64, 0xAB), got(bytes + 64, 0xCD);
    gemm_reference(a, w, v.ep, ref.data(), n);
    if (v.ep.kind == EpilogueKind::int32 && v.ep.acc_mul == 2) {
      const int32_t* r = reinterpret_cast<const int32_t*>(ref.data());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j)
          REQUIRE(int64_t(r[i * n + j]) == 2 * truth[i * n + j] - int64_t(max_code(wb)) * a.row_sums[i]);
    }
    if (v.ep.kind == EpilogueKind::codes && v.ep.scale == half.data()) {
      const uint8_t* r = ref.data();
      for (int64_t i = 0; i < m * n; ++i) {
        const double y = std::nearbyint(0.5 * double(truth[i]));
        REQUIRE(int(r[i]) == int(std::min(255.0, std::max(0.0, y))));
      }
    }
    const size_t used = v.ep.kind == EpilogueKind::codes ? static_cast<size_t>(m * n) : bytes;
    for (Isa isa : available_isas()) {
      CAPTURE(isa_name(isa));
      std::fill(got.begin(), got.end(), 0xCD);
      gemm_at(isa, a, w, v.ep, got.data(), n);
      REQUIRE(std::memcmp(ref.data(), got.data(), used) == 0);
      REQUIRE(got[used] == 0xCD);  // nothing written past the end
    }
  }
}

}  // namespace

TEST_CASE("pack/unpack round trip and row sums, all widths, odd shapes") {
  for (int bits : kBits)
    for (const Shape& s : kShapes) {
      const auto wc = make_codes(s.n, s.k, bits, Fill::random, 5);
      const PackedWeights w = pack_weights(wc.data(), s.n, s.k, s.k, bits);
      CHECK(w.k_pad % kPadK == 0);
      CHECK(w.k_blocks * block_k(bits) == w.k_pad);
      std::vector<uint8_t> back(wc.size());
      unpack_weights(w, back.data(), s.k);
      CHECK(back == wc);
      for (int64_t j = 0; j < s.n; ++j) {
        int32_t sum = 0;
        for (int64_t t = 0; t < s.k; ++t) sum += wc[j * s.k + t];
        CHECK(w.row_sums[j] == sum);
      }
      const auto ac = make_codes(s.m, s.k, bits, Fill::random, 6);
      const PackedActivations a = pack_activations(ac.data(), s.m, s.k, s.k, bits);
      CHECK(a.row_stride % 64 == 0);
      CHECK(a.row_stride % 4096 != 0);
      std::vector<uint8_t> aback(ac.size());
      unpack_activations(a, aback.data(), s.k);
      CHECK(aback == ac);
      for (int64_t i = 0; i < s.m; ++i) {
        int32_t sum = 0;
        for (int64_t t = 0; t < s.k; ++t) sum += ac[i * s.k + t];
        CHECK(a.row_sums[i] == sum);
      }
    }
}

TEST_CASE("packed weight layout: field j of byte 4c+i is W[c][k0+4j+i]") {
  // 16 channels x 16 k of u2: code = (c + k) % 4.
  std::vector<uint8_t> wc(16 * 16);
  for (int c = 0; c < 16; ++c)
    for (int k = 0; k < 16; ++k) wc[c * 16 + k] = static_cast<uint8_t>((c + k) % 4);
  const PackedWeights w = pack_weights(wc.data(), 16, 16, 16, 2);
  REQUIRE(w.k_blocks == 1);
  for (int c = 0; c < 16; ++c)
    for (int i = 0; i < 4; ++i) {
      const uint8_t byte = w.block(0, 0)[4 * c + i];
      for (int j = 0; j < 4; ++j) CHECK(((byte >> (2 * j)) & 3) == (c + 4 * j + i) % 4);
    }
}

TEST_CASE("pack rejects codes above the bit width") {
  std::vector<uint8_t> c{0, 1, 4, 2};
  CHECK_THROWS_AS(pack_weights(c.data(), 1, 4, 4, 2), lowbit::Error);
  CHECK_THROWS_AS(pack_activations(c.data(), 2, 2, 2, 2), lowbit::Error);
  CHECK_THROWS_AS(pack_weights(c.data(), 1, 4, 4, 3), lowbit::Error);
  CHECK_NOTHROW(pack_weights(c.data(), 1, 4, 4, 4));
}

TEST_CASE("every ISA bit-exact vs reference: random codes, all bit pairs, odd shapes") {
  lowbit::set_num_threads(0);
  uint32_t seed = 100;
  for (int wb : kBits)
    for (int ab : kBits)
      for (const Shape& s : kShapes) check_problem(s.m, s.n, s.k, wb, ab, Fill::random, seed++);
}

TEST_CASE("every ISA bit-exact vs reference: extreme codes (all max, alternating, zeros)") {
  for (int wb : kBits)
    for (int ab : kBits)
      for (Fill f : {Fill::all_max, Fill::alternating, Fill::zeros}) {
        check_problem(3, 33, 1000, wb, ab, f, 7);
        check_problem(65, 17, 63, wb, ab, f, 8);
      }
}

TEST_CASE("bigger tiles and both thread counts give identical results") {
  for (int threads : {1, 2}) {
    lowbit::set_num_threads(threads);
    check_problem(300, 600, 300, 4, 4, Fill::random, 1);
    check_problem(1, 1000, 512, 2, 2, Fill::random, 2);
    check_problem(2, 777, 2048, 8, 8, Fill::random, 3);
  }
  lowbit::set_num_threads(0);
}

TEST_CASE("K longer than one L1 slice of the ymm tiles, through their 5- and 6-row micro-kernels") {
  // The avx2 / avx_vnni tiles sum K in slices of 1024 k (256 k-steps); 11 rows = 6 + 5 rows.
  for (int wb : kBits) check_problem(11, 33, 2100, wb, 8, Fill::random, 40 + wb);
  check_problem(17, 20, 1100, 2, 2, Fill::all_max, 50);
}

TEST_CASE("signed weight grid through offset codes and the row-sum correction") {
  for (int bits : kBits) {
    const int64_t m = 7, n = 19, k = 45;
    const int half = 1 << (bits - 1);
    std::mt19937 rng(bits);
    std::vector<int8_t> q(n * k);
    for (auto& x : q) x = static_cast<int8_t>(static_cast<int>(rng() % (2 * half)) - half);
    std::vector<uint8_t> wc(n * k);
    offset_signed_weight_codes(q.data(), n * k, bits, wc.data());
    const auto ac = make_codes(m, k, 4, Fill::random, 9);
    const PackedWeights w = pack_weights(wc.data(), n, k, k, bits);
    const PackedActivations a = pack_activations(ac.data(), m, k, k, 4);
    Epilogue ep;
    ep.rowsum_mul = -half;
    for (Isa isa : available_isas()) {
      std::vector<int32_t> c(m * n);
      gemm_at(isa, a, w, ep, c.data(), n);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          int32_t s = 0;
          for (int64_t t = 0; t < k; ++t) s += int32_t(q[j * k + t]) * ac[i * k + t];
          REQUIRE(c[i * n + j] == s);
        }
    }
  }
  const int8_t bad[] = {2};
  uint8_t out[1];
  CHECK_THROWS_AS(offset_signed_weight_codes(bad, 1, 2, out), lowbit::Error);
}

TEST_CASE("overflow guard: K * max_a * max_w must fit int32") {
  CHECK(gemm_k_limit(8, 8) == (2147483647LL / (255 * 255)) / kPadK * kPadK);
  CHECK(gemm_k_limit(2, 2) > 1000000);
  CHECK(gemm_k_limit(8, 8, 2, -255) < gemm_k_limit(8, 8));
  const int64_t k = gemm_k_limit(8, 8) + 1;
  const auto wc = make_codes(1, k, 8, Fill::all_max, 1);
  const PackedWeights w = pack_weights(wc.data(), 1, k, k, 8);
  const PackedActivations a = pack_activations(wc.data(), 1, k, k, 8);
  int32_t c = 0;
  CHECK_THROWS_AS(gemm(a, w, Epilogue{}, &c, 1), lowbit::Error);
  CHECK_THROWS_AS(gemm_reference(a, w, Epilogue{}, &c, 1), lowbit::Error);
  // At the limit the exact all-max result is representable and every ISA gets it.
  const int64_t k2 = gemm_k_limit(8, 8);
  const PackedWeights w2 = pack_weights(wc.data(), 1, k2, k2, 8);
  const PackedActivations a2 = pack_activations(wc.data(), 1, k2, k2, 8);
  for (Isa isa : available_isas()) {
    gemm_at(isa, a2, w2, Epilogue{}, &c, 1);
    CHECK(int64_t(c) == k2 * 255 * 255);
  }
}

TEST_CASE("argument checks") {
  const auto wc = make_codes(4, 8, 4, Fill::random, 1);
  const PackedWeights w = pack_weights(wc.data(), 4, 8, 8, 4);
  const auto ac = make_codes(2, 9, 4, Fill::random, 1);
  const PackedActivations a = pack_activations(ac.data(), 2, 9, 9, 4);
  std::vector<int32_t> c(16);
  CHECK_THROWS_AS(gemm(a, w, Epilogue{}, c.data(), 4), lowbit::Error);  // k mismatch
  const PackedActivations a8 = pack_activations(ac.data(), 2, 8, 9, 4);
  CHECK_THROWS_AS(gemm(a8, w, Epilogue{}, c.data(), 3), lowbit::Error);  // ldo < n
  Epilogue f; f.kind = EpilogueKind::float32;
  CHECK_THROWS_AS(gemm(a8, w, f, c.data(), 4), lowbit::Error);  // no scale
  CHECK_NOTHROW(gemm(a8, w, Epilogue{}, c.data(), 4));
}

TEST_CASE("dispatch: detection, LOWBIT_ISA override, active_isa()") {
  // detected_isa() is the first supported level in preference order; scalar is always there.
  const Isa best = detected_isa();
  CHECK(isa_supported(Isa::scalar));
  CHECK(isa_supported(best));
  for (Isa isa : kIsaPreference) {
    if (isa == best) break;
    CHECK_MESSAGE(!isa_supported(isa), isa_name(isa), " is supported and preferred to ", isa_name(best));
  }
  CHECK(resolve_isa(nullptr) == best);
  CHECK(resolve_isa("") == best);
  // Every name parses back to its level, avx_vnni included.
  CHECK(parse_isa("avx_vnni") == Isa::avx_vnni);
  CHECK(parse_isa("amx") == Isa::amx);
  for (Isa isa : kIsaPreference) CHECK(parse_isa(isa_name(isa)) == isa);
  // Unknown names (near misses included) are rejected, naming the accepted ones.
  for (const char* bad : {"sse9", "avxvnni", "avx-vnni", "AVX2", "avx512 ", "AMX", "amx_int8", " "}) {
    CAPTURE(std::string(bad));
    CHECK_THROWS_WITH_AS(parse_isa(bad), doctest::Contains("expected one of amx, avx512, avx_vnni, avx2, scalar"),
                         lowbit::Error);
    CHECK_THROWS_AS(resolve_isa(bad), lowbit::Error);
  }
  // A known level the CPU lacks is an error naming what is available, never a fallback.
  for (Isa isa : kIsaPreference) {
    CAPTURE(isa_name(isa));
    if (isa_supported(isa)) {
      CHECK(resolve_isa(isa_name(isa)) == isa);
    } else {
      CHECK_THROWS_WITH_AS(resolve_isa(isa_name(isa)), doctest::Contains(("available: " + supported_isa_names()).c_str()),
                           lowbit::Error);
      CHECK_THROWS_AS(set_active_isa(isa), lowbit::Error);
    }
  }
  const Isa before = active_isa_level();
  for (Isa isa : available_isas()) {
    set_active_isa(isa);
    CHECK(active_isa_level() == isa);
    CHECK(std::string(lowbit::active_isa()) == isa_name(isa));
  }
  set_active_isa(before);
}

TEST_CASE("bench gemm --quick produces the JSON fields, at every level this CPU has") {
  BenchGemmOptions opt;
  opt.quick = true;
  opt.repeats = 1;
  opt.min_sample_s = 0.001;
  opt.threads = 1;
  const Isa before = active_isa_level();
  for (Isa isa : available_isas()) {
    CAPTURE(isa_name(isa));
    set_active_isa(isa);
    const nlohmann::json j = bench_gemm(opt);
    CHECK(j["isa"].get<std::string>() == isa_name(isa));
    REQUIRE(j["results"].size() >= 4);
    for (const auto& e : j["results"]) {
      for (const char* key : {"kernel", "wbits", "abits", "m", "n", "k", "threads", "gmacs", "sgemm_gmacs", "ratio"})
        CHECK(e.contains(key));
      CHECK(e["gmacs"].get<double>() > 0);
      CHECK(e["sgemm_gmacs"].get<double>() > 0);
      CHECK(e["threads"].get<int>() == 1);
      // Every SIMD level has its own peak probe (scalar has none).
      if (isa != Isa::scalar) CHECK(e["probe_peak_gmacs"].get<double>() > 0);
    }
    if (isa != Isa::scalar) CHECK(j["peak_macs_per_cycle_per_core"].get<double>() > 0);
    CHECK(format_bench_gemm(j).find("GMAC/s") != std::string::npos);
  }
  set_active_isa(before);
  lowbit::set_num_threads(0);
}
