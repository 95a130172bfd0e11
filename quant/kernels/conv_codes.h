// conv_codes.h: integer convolution straight on NHWC activation codes (implicit GEMM: no im2col,
// no packed activation rows, no row sums), for every conv of the runtime whose weights fit (below).
//
// For every output pixel (image, oh, ow) and output channel n:
//   acc'[n] = sum_{kh, kw, c} s[n][(kh*kernel + kw)*C + c] * x[image][oh*stride + kh][ow*stride + kw][c]
// over a BORDERED input (the caller writes `padding` pixels of the zero-point code around each
// image, so there is no bounds test in the inner loop), then the float / codes / int32 epilogue of
// gemm.h with acc' as given. s are the SIGNED weights the GEMM's row-sum correction stands for:
//   s[n][k] = acc_mul * W[n][k] + rowsum_mul     (odd grids: 2m - n; signed grids: q)
// so acc' equals the GEMM's acc' = acc_mul * acc + rowsum_mul * rowsum exactly, and the epilogue
// sees the same integer: the two paths are bit-identical by construction (and tested so).
//
// Kernels: vpdpbusd with the codes as the unsigned operand (a dword = 4 channels of one pixel,
// broadcast) and s as the signed one (AVX-512 VNNI, AVX-VNNI); at the amx level, tdpbusd on
// 16-pixel x 64-k tiles of the codes gathered per kernel row; vpmaddubsw + vpmaddwd on AVX2,
// where one pair max_code(a) * (|s_k| + |s_k+1|) must stay <= 32767 (true for every 2/4-bit weight
// grid and for a one-channel first layer, whose weights pair with zero padding; the others take
// the GEMM path there). The AVX2 level has two more kernels that use the low bit width:
//  - maddubs16: vpmaddubsw's int16 pair sums added with vpaddw, widened to int32 only every run of
//    groups whose int16 sum stays exact;
//  - pair_lut, for 2-bit codes: two channels' codes form a 4-bit index a_c + 4 a_{c+1}; a 16-entry
//    table per (output channel, channel pair) holds m_c a + m_{c+1} a' for the layer's weights
//    written s = g m + s_min (m >= 0); vpshufb looks up 32 pixels' pair products at once, vpaddb
//    sums them in bytes, widened to 16 and then 32 bits before they can overflow;
//    acc' = g * sum m a + s_min * (window sum of the codes).
// Each level lists its kernels in one table (conv_codes_kernels); conv_codes runs the first whose
// rule holds, and fastest_conv_codes_kernel measures the ones that apply to a layer. Every kernel
// computes the same integers, so the choice never changes a result.
// Two widenings make the first layer fit too:
//  - channels are padded to a multiple of 4 (C4) with zero weights; the caller's bordered image
//    has C4 channels, the padding ones holding code 0;
//  - weights outside [-128, 127] with acc_mul = 2 (the 8-bit odd grid 2m - 255) are split as
//    s = 2 s' + t, t = rowsum_mul mod 2: acc' = 2 * sum s' a + t * (window sum of the codes),
//    the window sum computed in the AVX-512 tile (a vpdpbusd against ones), in a separate pass
//    per output pixel at the ymm levels.
#pragma once
#include <cstdint>

#include "core/cpu_features.h"
#include "quant/kernels/gemm.h"
#include "quant/kernels/packing.h"
#include "quant/kernels/quantize_codes.h"

namespace lowbit::kernels {

// s8 weights in 16-channel blocks laid out [n / 16][k / 4][16 channels][4 k] (a zmm per 4 k),
// k = (kh * kernel + kw) * in_channels + c over the PADDED channels. Each block is zero-padded
// to k_padded (a multiple of 64): 16 k-groups of it are one AMX tile (16 rows of 64 bytes, the
// VNNI layout tdpbusd reads), so a tile at the end of K never reads past its block.
struct ConvCodesWeights {
  int64_t out_channels = 0;
  int64_t source_channels = 0;  // C of the layer
  int64_t in_channels = 0;      // C4 = C rounded up to 4: the bordered image's channels
  int64_t kernel = 1;
  int64_t k = 0;                // kernel * kernel * in_channels
  int64_t k_padded = 0;         // k rounded up to 64; weights beyond k are zero
  int64_t n_blocks = 0;         // ceil(out_channels / 16); channels >= out_channels are zero
  int max_abs = 0;              // max |s'|: the overflow guard
  // max |s'_k| + |s'_k+1| over the pairs vpmaddubsw adds (k even, padded layout; padding channels
  // weigh 0): its saturation guard. A one-channel first layer pairs each weight with a zero.
  int max_pair_abs = 0;
  bool split = false;           // s = 2 s' + window_term (see above)
  int window_term = 0;          // t: 0 or 1
  AlignedBytes data;            // n_blocks * block_bytes() bytes
  // The pair tables of the lookup-table kernel (empty unless pack_conv_codes_weights was given
  // act_bits <= 2 and the grid is small enough): rows n = 0 .. n_blocks*16 - 1, then (pair_window)
  // one row of all-ones weights for the window sum. Entry a + 4 a' of the table of row n at pair
  // step t = tap * (in_channels / 2) + channel pair is m a + m' a' (m, m' its two weights). Rows
  // are interleaved in groups of kPairRows, [group][t][row in group][16 bytes], so a register
  // tile of kPairRows channels reads one 64-byte line per step; the window row follows alone.
  static constexpr int kPairRows = 4;
  AlignedBytes pair_tables;
  int64_t pair_steps = 0;       // kernel^2 * in_channels / 2
  int pair_g = 1, pair_min = 0; // s = pair_g * m + pair_min over the layer's real weights
  int pair_max_entry = 0;       // the largest table entry (sets how often bytes are widened)
  bool pair_window = false;     // pair_min != 0: the window row exists
  int64_t pair_rows() const { return n_blocks * kBlockChannels + (pair_window ? 1 : 0); }
  // The 16 bytes of row `row` at step t (rows < n_blocks * 16: interleaved groups; the window row).
  int64_t pair_entry_offset(int64_t row, int64_t t) const {
    const int64_t grouped = n_blocks * kBlockChannels;
    if (row >= grouped) return (grouped * pair_steps + t) * 16;
    return ((row / kPairRows * pair_steps + t) * kPairRows + row % kPairRows) * 16;
  }
  int64_t block_bytes() const { return k_padded * kBlockChannels; }
  const int8_t* block(int64_t nb) const { return reinterpret_cast<const int8_t*>(data.data()) + nb * block_bytes(); }
};

// Whether w (n x k, k = kernel^2 * in_channels) can be served by conv_codes with this correction.
bool conv_codes_fits(const PackedWeights& w, int32_t acc_mul, int32_t rowsum_mul, int64_t in_channels);
// The signed weights of w; throws lowbit::Error when !conv_codes_fits(...). act_bits: the bits of
// the codes the layer will read (1..8); at <= 2 the pair tables are built too when the grid fits.
ConvCodesWeights pack_conv_codes_weights(const PackedWeights& w, int32_t acc_mul, int32_t rowsum_mul,
                                         int64_t in_channels, int64_t kernel, int act_bits);

struct ConvCodesShape {
  int64_t channels = 0;                   // C4 of the weights (padding channels hold code 0)
  int64_t height = 0, width = 0;          // of the BORDERED input image
  int64_t stride = 1;
  int64_t out_height = 0, out_width = 0;  // (out - 1) * stride + kernel <= bordered size
  int act_bits = 8;                       // the codes' range: 0 .. 2^act_bits - 1 (1..8)
};

// What the float epilogue may fold in after y = fl(fl(acc' * scale) + bias): the residual add
// y = fl(y + residual[pixel][n]) (residual laid out like out, leading dimension ldo), then ReLU
// y = y < 0 ? 0 : y (std::max's choice, so -0 and NaN pass as in the separate ops).
// Then, optionally, codes of that final y by up to two quantize_codes maps (the next layers'
// activation quantizers), written like out (uint8_t, leading dimension ldo).
struct ConvCodesFusion {
  const float* residual = nullptr;
  bool relu = false;
  struct Codes {
    CodeMap map;
    uint8_t* out = nullptr;
  };
  static constexpr int kMaxCodes = 2;
  Codes codes[kMaxCodes];
  int code_outputs = 0;
  bool any() const { return residual != nullptr || relu || code_outputs > 0; }
};

namespace detail { struct ConvCodesProblem; }

// One kernel of a level's table: its name (reported by `lowbit inspect` / `bench infer`), the rule
// saying when it is exact and applicable, and the whole call (its own threading).
struct ConvCodesKernel {
  const char* name;  // "<level>.<kernel>", e.g. "avx2.pair_lut", "avx2.maddubs", "avx512.vpdpbusd"
  bool (*applies)(const ConvCodesWeights& w, int act_bits);
  void (*run)(const detail::ConvCodesProblem& p, int64_t images);
  bool reads_pair_tables = false;  // ConvCodesWeights::pair_tables
};
struct ConvCodesKernelTable {
  const ConvCodesKernel* rows;
  int count;
};
// The kernels of a level, preferred first (the level must be supported by this CPU).
ConvCodesKernelTable conv_codes_kernels(Isa isa);
// The kernel conv_codes_at(isa, ...) runs for these weights and codes: the first row whose rule
// holds; nullptr when none does (the caller then takes the im2col + GEMM path).
const ConvCodesKernel* conv_codes_kernel(Isa isa, const ConvCodesWeights& w, int act_bits);
// The fastest kernel of `isa` for one layer, measured: every row whose rule holds runs `images`
// synthetic images of this shape (a runtime passes the images of its calls) through the `kind`
// epilogue (one warm-up, best of three), and
// a later row replaces the first applicable one only when at least 5 % faster (so noise keeps the
// table's order). nullptr when no row applies. All rows compute the same bytes: the choice only
// changes speed. Runs nothing when fewer than two rows apply.
const ConvCodesKernel* fastest_conv_codes_kernel(Isa isa, const ConvCodesShape& s, const ConvCodesWeights& w,
                                                 EpilogueKind kind, int64_t images = 2);
// Frees w's pair tables (8x the weight bytes) when `kept`, the kernel a runtime chose for the
// layer, does not read them; the other kernels of every level still apply.
void drop_unused_pair_tables(ConvCodesWeights& w, const ConvCodesKernel* kept);
// Whether some kernel of `isa` is exact for these codes and weights (AVX2's int16 pair bound).
bool conv_codes_supported(Isa isa, const ConvCodesWeights& w, int act_bits);

// x: images x height x width x C bytes (bordered). out: (images * out_h * out_w) rows of ldo
// entries (uint8_t codes, float or int32 per ep.kind), NHWC. ep.acc_mul / rowsum_mul must be
// 1 / 0 (s already holds them). Parallel over output rows (lowbit::parallel_for).
// A fusion needs the float32 kind.
void conv_codes(const uint8_t* x, int64_t images, const ConvCodesShape& s, const ConvCodesWeights& w,
                const Epilogue& ep, void* out, int64_t ldo, const ConvCodesFusion& fuse = {});
void conv_codes_at(Isa isa, const uint8_t* x, int64_t images, const ConvCodesShape& s, const ConvCodesWeights& w,
                   const Epilogue& ep, void* out, int64_t ldo, const ConvCodesFusion& fuse = {});
// The same with one given kernel of the level's table (tests and benchmarks: every kernel whose
// rule holds must give the same bytes); throws when its rule does not hold.
void conv_codes_with(const ConvCodesKernel& kernel, const uint8_t* x, int64_t images, const ConvCodesShape& s,
                     const ConvCodesWeights& w, const Epilogue& ep, void* out, int64_t ldo,
                     const ConvCodesFusion& fuse = {});

}  // namespace lowbit::kernels
