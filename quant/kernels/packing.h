// packing.h: packed layouts of unsigned low-bit codes (u2 / u4 / u8) for the integer GEMM/GEMV
// kernels, and the functions that pack, unpack and sum them.
//
// Weights  W[n][k] (n = output channel, k = reduction index) are packed ONCE, at export/load
// time, into 64-byte blocks that the AVX-512 VNNI micro-kernel streams without any shuffle:
//
//   block (16 output channels x kBlockK(bits) k-values), 64 bytes = one zmm register:
//     byte  q[4*c + i]           (c = channel 0..15 inside the block, i = 0..3)
//     bits  [bits*j, bits*j+bits) of that byte = W[n0 + c][k0 + 4*j + i],  j = 0 .. 8/bits - 1
//   i.e. every 32-bit lane holds 4 consecutive k of ONE channel (what vpdpbusd multiplies with a
//   broadcast dword of 4 activations), and the 8/bits codes that share a byte are 4 k apart, so
//   one AND with the mask (2^bits-1) << (bits*j) yields a ready vpdpbusd operand for k-group j
//   (scaled by 2^(bits*j); the kernels keep one accumulator per j and shift it back exactly).
//   Blocks are ordered [n / 16][k / kBlockK]: the K-stream of 16 channels is contiguous.
//
// Activations A[m][k] (m = row: a batch item or an im2col pixel) are packed per row, codes in
// plain k order, little-endian bit fields: byte t holds A[m][t*P + j] at bits [bits*j, ...),
// P = 8/bits, with a 64-byte-aligned row stride that is padded away from multiples of 4 KiB.
//
// Both carry per-row code sums (int32), computed at pack time:
//   weight_row_sums[n]     = sum_k W[n][k]   (needed when activations are offset to signed s8)
//   activation_row_sums[m] = sum_k A[m][k]   (the row-sum correction of odd / signed weight grids)
// K is zero-padded to a multiple of kPadK (zeros contribute nothing to any dot product).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace lowbit::kernels {

inline constexpr int kBlockChannels = 16;  // one zmm of int32 accumulators
inline constexpr int kBlockBytes = 64;     // one zmm of weight bytes
inline constexpr int kPadK = 16;           // K padding: a multiple of every kBlockK(bits)

constexpr int codes_per_byte(int bits) { return 8 / bits; }
constexpr int block_k(int bits) { return 4 * codes_per_byte(bits); }  // k-values per block
constexpr int max_code(int bits) { return (1 << bits) - 1; }
constexpr bool valid_bits(int bits) { return bits == 2 || bits == 4 || bits == 8; }

// ggml-style block structs: one per weight width, 16 channels x block_k(bits) k-values.
struct BlockU2x16 { uint8_t q[kBlockBytes]; };  // 16 ch x 16 k, 4 codes per byte
struct BlockU4x16 { uint8_t q[kBlockBytes]; };  // 16 ch x  8 k, 2 codes per byte
struct BlockU8x16 { uint8_t q[kBlockBytes]; };  // 16 ch x  4 k, 1 code  per byte
static_assert(sizeof(BlockU2x16) == 64 && kBlockChannels * block_k(2) * 2 / 8 == 64);
static_assert(sizeof(BlockU4x16) == 64 && kBlockChannels * block_k(4) * 4 / 8 == 64);
static_assert(sizeof(BlockU8x16) == 64 && kBlockChannels * block_k(8) * 8 / 8 == 64);
static_assert(kPadK % block_k(2) == 0 && kPadK % block_k(4) == 0 && kPadK % block_k(8) == 0);

// 64-byte aligned, zero-initialised byte storage (vector-friendly, cache-line aligned).
class AlignedBytes {
 public:
  AlignedBytes() = default;
  explicit AlignedBytes(size_t n);
  uint8_t* data() { return ptr_.get(); }
  const uint8_t* data() const { return ptr_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free { void operator()(uint8_t* p) const; };
  std::unique_ptr<uint8_t, Free> ptr_;
  size_t size_ = 0;
};

// Weights W[n][k] packed into 16-channel blocks (layout above).
struct PackedWeights {
  int bits = 0;
  int64_t n = 0, k = 0;
  int64_t n_blocks = 0;  // ceil(n / 16); channels >= n are zero
  int64_t k_pad = 0;     // k rounded up to kPadK; k-values >= k are zero
  int64_t k_blocks = 0;  // k_pad / block_k(bits)
  AlignedBytes blocks;   // n_blocks * k_blocks * 64 bytes
  std::vector<int32_t> row_sums;  // n entries: sum_k W[n][k]
  const uint8_t* block(int64_t nb, int64_t kb) const {
    return blocks.data() + (nb * k_blocks + kb) * kBlockBytes;
  }
};

// Activations A[m][k], codes packed per row (layout above).
struct PackedActivations {
  int bits = 0;
  int64_t m = 0, k = 0;
  int64_t k_pad = 0;       // k rounded up to kPadK
  int64_t row_stride = 0;  // bytes between rows: >= k_pad*bits/8, multiple of 64, not of 4096
  AlignedBytes data;       // m * row_stride bytes
  std::vector<int32_t> row_sums;  // m entries: sum_k A[m][k]
  const uint8_t* row(int64_t r) const { return data.data() + r * row_stride; }
};

// Packs W (row-major, n rows of k codes, leading dimension ldw >= k). Every code must be
// <= 2^bits - 1 (throws lowbit::Error naming the first offender otherwise).
PackedWeights pack_weights(const uint8_t* codes, int64_t n, int64_t k, int64_t ldw, int bits);
// Packs A (row-major, m rows of k codes, leading dimension lda >= k).
PackedActivations pack_activations(const uint8_t* codes, int64_t m, int64_t k, int64_t lda,
                                   int bits);
// Writes the codes back (n x k / m x k, row-major, leading dimension ld): the exact inverse.
void unpack_weights(const PackedWeights& w, uint8_t* codes, int64_t ld);
void unpack_activations(const PackedActivations& a, uint8_t* codes, int64_t ld);

// Single-code accessors (slow; for references and tests).
inline int weight_code(const PackedWeights& w, int64_t n, int64_t k) {
  const int bk = block_k(w.bits);
  const int64_t kk = k % bk;
  const uint8_t byte = w.block(n / kBlockChannels, k / bk)[4 * (n % kBlockChannels) + kk % 4];
  return (byte >> (w.bits * static_cast<int>(kk / 4))) & max_code(w.bits);
}
inline int activation_code(const PackedActivations& a, int64_t m, int64_t k) {
  const int P = codes_per_byte(a.bits);
  const uint8_t byte = a.row(m)[k / P];
  return (byte >> (a.bits * static_cast<int>(k % P))) & max_code(a.bits);
}

// Signed weight grids (QIL/LSQ: q in [-2^(b-1), 2^(b-1)-1], zero point 0) are served by the
// same unsigned kernels: store m = q + 2^(b-1) (an unsigned b-bit code, see
// offset_signed_weight_codes) and ask the epilogue for the row-sum correction
//   sum_k q_k a_k = sum_k m_k a_k - 2^(b-1) * sum_k a_k   (acc_mul = 1, rowsum_mul = -2^(b-1)).
// Odd symmetric grids (DoReFa/SAWB: w = s*(2m - n)/n) use acc_mul = 2, rowsum_mul = -n.
void offset_signed_weight_codes(const int8_t* q, int64_t count, int bits, uint8_t* codes_out);

}  // namespace lowbit::kernels
