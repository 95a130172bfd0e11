// packing.cpp: pack / unpack / row sums for the u2/u4/u8 layouts described in packing.h.
// Runs once per weight tensor (export/load) and once per activation matrix; plain C++ because
// it is O(n*k) against the O(m*n*k) GEMM that follows.
#include "quant/kernels/packing.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace lowbit::kernels {

AlignedBytes::AlignedBytes(size_t n) : size_(n) {
  const size_t bytes = ((n + 63) / 64) * 64 + 64;  // never 0, whole cache lines
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, bytes));
  LOWBIT_CHECK(p != nullptr, "AlignedBytes: out of memory allocating ", bytes, " bytes");
  std::memset(p, 0, bytes);
  ptr_.reset(p);
}
void AlignedBytes::Free::operator()(uint8_t* p) const { std::free(p); }

namespace {
int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

void check_codes(const uint8_t* codes, int64_t rows, int64_t k, int64_t ld, int bits,
                 const char* what) {
  LOWBIT_CHECK(valid_bits(bits), what, ": bits must be 2, 4 or 8, got ", bits);
  LOWBIT_CHECK(rows >= 1 && k >= 1, what, ": shape must be positive, got ", rows, " x ", k);
  LOWBIT_CHECK(ld >= k, what, ": leading dimension ", ld, " must be >= k = ", k);
  LOWBIT_CHECK(codes != nullptr, what, ": null codes pointer");
  if (bits == 8) return;
  const int mx = max_code(bits);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < k; ++c)
      LOWBIT_CHECK(codes[r * ld + c] <= mx, what, ": code ", int(codes[r * ld + c]), " at (", r,
                   ", ", c, ") exceeds the ", bits, "-bit maximum ", mx);
}
}  // namespace

PackedWeights pack_weights(const uint8_t* codes, int64_t n, int64_t k, int64_t ldw, int bits) {
  check_codes(codes, n, k, ldw, bits, "pack_weights");
  PackedWeights w;
  w.bits = bits;
  w.n = n;
  w.k = k;
  w.n_blocks = (n + kBlockChannels - 1) / kBlockChannels;
  w.k_pad = round_up(k, kPadK);
  w.k_blocks = w.k_pad / block_k(bits);
  w.blocks = AlignedBytes(static_cast<size_t>(w.n_blocks * w.k_blocks * kBlockBytes));
  w.row_sums.assign(static_cast<size_t>(n), 0);
  const int bk = block_k(bits);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t nb = r / kBlockChannels, c = r % kBlockChannels;
    int32_t sum = 0;
    for (int64_t kk = 0; kk < k; ++kk) {
      const int code = codes[r * ldw + kk];
      sum += code;
      const int64_t kb = kk / bk, within = kk % bk;
      uint8_t* q = w.blocks.data() + (nb * w.k_blocks + kb) * kBlockBytes;
      q[4 * c + within % 4] |= static_cast<uint8_t>(code << (bits * (within / 4)));
    }
    w.row_sums[static_cast<size_t>(r)] = sum;
  }
  return w;
}

PackedActivations pack_activations(const uint8_t* codes, int64_t m, int64_t k, int64_t lda,
                                   int bits) {
  check_codes(codes, m, k, lda, bits, "pack_activations");
  PackedActivations a;
  a.bits = bits;
  a.m = m;
  a.k = k;
  a.k_pad = round_up(k, kPadK);
  a.row_stride = round_up(a.k_pad * bits / 8, 64);
  // A power-of-two stride maps every row to the same L1 sets; one extra line breaks that.
  if (a.row_stride % 4096 == 0) a.row_stride += 64;
  a.data = AlignedBytes(static_cast<size_t>(m * a.row_stride));
  a.row_sums.assign(static_cast<size_t>(m), 0);
  const int P = codes_per_byte(bits);
  for (int64_t r = 0; r < m; ++r) {
    uint8_t* row = a.data.data() + r * a.row_stride;
    int32_t sum = 0;
    for (int64_t kk = 0; kk < k; ++kk) {
      const int code = codes[r * lda + kk];
      sum += code;
      row[kk / P] |= static_cast<uint8_t>(code << (bits * (kk % P)));
    }
    a.row_sums[static_cast<size_t>(r)] = sum;
  }
  return a;
}

void unpack_weights(const PackedWeights& w, uint8_t* codes, int64_t ld) {
  for (int64_t r = 0; r < w.n; ++r)
    for (int64_t kk = 0; kk < w.k; ++kk) codes[r * ld + kk] = static_cast<uint8_t>(weight_code(w, r, kk));
}

void unpack_activations(const PackedActivations& a, uint8_t* codes, int64_t ld) {
  for (int64_t r = 0; r < a.m; ++r)
    for (int64_t kk = 0; kk < a.k; ++kk)
      codes[r * ld + kk] = static_cast<uint8_t>(activation_code(a, r, kk));
}

void offset_signed_weight_codes(const int8_t* q, int64_t count, int bits, uint8_t* codes_out) {
  LOWBIT_CHECK(valid_bits(bits), "offset_signed_weight_codes: bits must be 2, 4 or 8, got ", bits);
  const int half = 1 << (bits - 1);
  for (int64_t i = 0; i < count; ++i) {
    LOWBIT_CHECK(q[i] >= -half && q[i] <= half - 1, "offset_signed_weight_codes: code ", int(q[i]),
                 " at ", i, " is outside the signed ", bits, "-bit range [", -half, ", ", half - 1, "]");
    codes_out[i] = static_cast<uint8_t>(q[i] + half);
  }
}

}  // namespace lowbit::kernels
