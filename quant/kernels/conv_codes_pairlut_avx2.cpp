// conv_codes_pairlut_avx2.cpp: the AVX2 lookup-table kernel of conv_codes.h for 2-bit codes
// ("avx2.pair_lut"). Compiled with -mavx2 -mfma -ffp-contract=off only.
//
// 1. Pair planes. The bordered NHWC codes become, per channel pair j and stride phase (py, px),
//    a plane of 4-bit indices a_{2j} + 4 a_{2j+1}, one byte per pixel, the images one after another:
//      plane (j, py * S + px) [image][y][x] = the pair of pixel (image, y * S + py, x * S + px),
//    y < Hph = ceil(H / S), x < Wph = ceil(W / S). Output (oh, ow) reads at tap (kh, kw) the plane
//    (j, (kh % S, kw % S)) at (oh + kh / S, ow + kw / S). Over "virtual" outputs
//    q = (image * Hph + oh) * Wph + ow, ow < Wph, oh < Hph (those outside OH x OW are computed and
//    dropped), every (tap, pair) step is ONE constant offset from q: 32 consecutive virtual outputs
//    are one unaligned load, with no gather and no per-row bookkeeping.
// 2. Register tile: 4 table rows (output channels) x 2 vectors of 32 virtual outputs. Per step, 2
//    index loads, 4 table broadcasts (vbroadcasti128), 8 vpshufb and 8 vpaddb into byte sums. Every
//    F steps (F * max entry <= 255) the bytes are widened: A += acc as 16-bit words (even byte +
//    256 * odd byte, mod 2^16), B += acc >> 8 (the odd bytes), so even = A - 256 B (mod 2^16).
//    Words hold 65535 / max entry steps; a longer K runs in segments summed in int32.
// 3. The int32 sums U[row][q] of a chunk of tiles become acc' = g * U + s_min * window (the
//    window row: all-ones weights), the integer every other kernel computes; a codes output runs
//    channel-major and transposes bytes, the others transpose acc' 8 x 8 into the ymm epilogue.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/parallel.h"
#include "quant/kernels/conv_codes_internal.h"

namespace lowbit::kernels::detail::avx2 {
namespace {

#include "quant/kernels/quantize_codes_ymm.inc"
#include "quant/kernels/conv_codes_ymm_epilogue.inc"

constexpr int kRows = 4;                 // table rows (output channels) of a register tile
constexpr int kVecs = 2;                 // vectors of 32 virtual outputs of a register tile
constexpr int kTileOut = 32 * kVecs;
constexpr int kChunkTiles = 4;           // tiles that share one pass over a row group's tables
constexpr int kChunkOut = kTileOut * kChunkTiles;

struct Geometry {
  int64_t S = 1, K = 1, hph = 0, wph = 0, per_image = 0, total = 0, plane_bytes = 0, planes = 0;
  int64_t phases = 1;  // min(K, S): phase rows / columns a tap reads (a 1x1 stride-2 conv: only (0, 0))
  int64_t plane(int64_t pair, int64_t py, int64_t px) const { return (pair * phases + py) * phases + px; }
};

Geometry geometry(const ConvCodesProblem& p, int64_t images) {
  Geometry g;
  g.S = p.shape.stride;
  g.K = p.w->kernel;
  g.hph = (p.shape.height + g.S - 1) / g.S;
  g.wph = (p.shape.width + g.S - 1) / g.S;
  g.per_image = g.hph * g.wph;
  g.total = images * g.per_image;
  // A chunk's last tile reads up to kChunkOut - 1 outputs past the end, at the largest offset.
  const int64_t max_offset = ((g.K - 1) / g.S) * (g.wph + 1);
  g.plane_bytes = (g.total + kChunkOut + max_offset + 63) / 64 * 64;
  g.phases = std::min(g.K, g.S);
  g.planes = (p.shape.channels / 2) * g.phases * g.phases;
  return g;
}

// Walks the virtual outputs q0, q0 + 1, ... and names the output pixel of each (-1: a border one).
class OutputCursor {
 public:
  OutputCursor(const Geometry& g, const ConvCodesShape& sh, int64_t q0)
      : g_(g), sh_(sh), img_(q0 / g.per_image), oh_(q0 % g.per_image / g.wph), ow_(q0 % g.wph) {}
  // The next n outputs (those past `remaining` are border ones); whether any is a real output.
  bool next(int n, int64_t remaining, int64_t* pixel) {
    bool any = false;
    for (int i = 0; i < n; ++i) {
      const bool valid = i < remaining && oh_ < sh_.out_height && ow_ < sh_.out_width;
      pixel[i] = valid ? (img_ * sh_.out_height + oh_) * sh_.out_width + ow_ : -1;
      any = any || valid;
      if (++ow_ == g_.wph) {
        ow_ = 0;
        if (++oh_ == g_.hph) oh_ = 0, ++img_;
      }
    }
    return any;
  }

 private:
  const Geometry& g_;
  const ConvCodesShape& sh_;
  int64_t img_, oh_, ow_;
};

// Step t = tap * pairs + j: where its indices lie from virtual output 0.
std::vector<int64_t> step_offsets(const ConvCodesProblem& p, const Geometry& g) {
  const int64_t pairs = p.shape.channels / 2;
  std::vector<int64_t> off;
  for (int64_t kh = 0; kh < g.K; ++kh)
    for (int64_t kw = 0; kw < g.K; ++kw)
      for (int64_t j = 0; j < pairs; ++j) {
        off.push_back(g.plane(j, kh % g.S, kw % g.S) * g.plane_bytes + (kh / g.S) * g.wph + kw / g.S);
      }
  return off;
}

// 8 pixels' 16 channels (codes at px[i * step + c]) -> their 8 pair indices, plane j at
// out[j * plane_stride .. + 8]: vpmaddubsw with (1, 4) forms the indices, three rounds of
// unpacks transpose the 8 x 8 bytes.
inline void pack8x16(const uint8_t* px, int64_t step, uint8_t* out, int64_t plane_stride) {
  const __m128i w14 = _mm_set1_epi16(0x0401);
  __m128i v[4];
  for (int i = 0; i < 4; ++i) {
    const __m128i a = _mm_maddubs_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(px + 2 * i * step)), w14);
    const __m128i b = _mm_maddubs_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(px + (2 * i + 1) * step)), w14);
    v[i] = _mm_packus_epi16(a, b);  // pixel 2i's 8 indices, then pixel 2i + 1's
  }
  // (v0, v1) = pixels (0 1, 2 3): unpacklo -> 0/2 interleaved, unpackhi -> 1/3 interleaved.
  const __m128i w0 = _mm_unpacklo_epi8(v[0], v[1]), w1 = _mm_unpackhi_epi8(v[0], v[1]);
  const __m128i w2 = _mm_unpacklo_epi8(v[2], v[3]), w3 = _mm_unpackhi_epi8(v[2], v[3]);
  const __m128i z0 = _mm_unpacklo_epi8(w0, w1), z1 = _mm_unpackhi_epi8(w0, w1);  // pixels 0-3, pairs 0-3 / 4-7
  const __m128i z2 = _mm_unpacklo_epi8(w2, w3), z3 = _mm_unpackhi_epi8(w2, w3);  // pixels 4-7
  const __m128i o[4] = {_mm_unpacklo_epi32(z0, z2), _mm_unpackhi_epi32(z0, z2), _mm_unpacklo_epi32(z1, z3),
                        _mm_unpackhi_epi32(z1, z3)};  // pairs (0 1), (2 3), (4 5), (6 7)
  for (int i = 0; i < 4; ++i) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 2 * i * plane_stride), o[i]);
    _mm_storeh_pd(reinterpret_cast<double*>(out + (2 * i + 1) * plane_stride), _mm_castsi128_pd(o[i]));
  }
}

// Images [i0, i1) of the bordered NHWC codes into the pair planes (zeroed beforehand where the
// planes have no pixel: phases of an odd-sized image, the slack at the end). Per image row and
// phase column: 8 pixels x 16 channels at a time in SIMD, the rest in scalar code.
void pack_planes(const ConvCodesProblem& p, const Geometry& g, int64_t i0, int64_t i1, uint8_t* planes) {
  const int64_t C = p.shape.channels, H = p.shape.height, W = p.shape.width, pairs = C / 2, S = g.S;
  const int64_t pair_stride = g.phases * g.phases * g.plane_bytes;
  for (int64_t img = i0; img < i1; ++img)
    for (int64_t y = 0; y < H; ++y) {
      if (y % S >= g.phases) continue;
      for (int64_t px = 0; px < g.phases; ++px) {
        const int64_t n = (W - px + S - 1) / S;  // pixels x = px + S * i of this phase
        const uint8_t* src = p.x + ((img * H + y) * W + px) * C;
        uint8_t* dst = planes + g.plane(0, y % S, px) * g.plane_bytes + (img * g.hph + y / S) * g.wph;
        int64_t i = 0;
        if (C % 16 == 0)
          for (; i + 8 <= n; i += 8)
            for (int64_t c = 0; c < C; c += 16) pack8x16(src + i * S * C + c, S * C, dst + (c / 2) * pair_stride + i, pair_stride);
        for (; i < n; ++i)
          for (int64_t j = 0; j < pairs; ++j)
            dst[j * pair_stride + i] = static_cast<uint8_t>(src[i * S * C + 2 * j] + 4 * src[i * S * C + 2 * j + 1]);
      }
    }
}

// U[r][i] (int32, row stride ldu) for table rows row0 .. row0 + R and virtual outputs q0 .. q0 + 64.
template <int R>
void tile(const ConvCodesWeights& w, const uint8_t* planes, const int64_t* off, int64_t q0, int64_t row0,
          int64_t flush_steps, int64_t segment_steps, int32_t* u, int64_t ldu) {
  static_assert(R == 1 || R == ConvCodesWeights::kPairRows, "a group of interleaved rows, or the window row");
  const int64_t T = w.pair_steps;
  // Row r's table at step t: tab + (t * R + r) * 16 (ConvCodesWeights::pair_entry_offset).
  const uint8_t* const tab = w.pair_tables.data() + w.pair_entry_offset(row0, 0);
  const uint8_t* const base = planes + q0;
  for (int64_t s0 = 0; s0 < T; s0 += segment_steps) {
    const int64_t s1 = std::min(T, s0 + segment_steps);
    __m256i a16[R][kVecs], b16[R][kVecs];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kVecs; ++v) a16[r][v] = b16[r][v] = _mm256_setzero_si256();
    for (int64_t f0 = s0; f0 < s1; f0 += flush_steps) {
      const int64_t f1 = std::min(s1, f0 + flush_steps);
      __m256i acc[R][kVecs];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm256_setzero_si256();
      const uint8_t* tp = tab + f0 * R * 16;
      for (int64_t t = f0; t < f1; ++t, tp += R * 16) {
        const uint8_t* src = base + off[t];
        __m256i x[kVecs];
#pragma GCC unroll 2
        for (int v = 0; v < kVecs; ++v) x[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32 * v));
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const __m256i tb = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(tp + r * 16)));
#pragma GCC unroll 2
          for (int v = 0; v < kVecs; ++v) acc[r][v] = _mm256_add_epi8(acc[r][v], _mm256_shuffle_epi8(tb, x[v]));
        }
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < kVecs; ++v) {
          a16[r][v] = _mm256_add_epi16(a16[r][v], acc[r][v]);
          b16[r][v] = _mm256_add_epi16(b16[r][v], _mm256_srli_epi16(acc[r][v], 8));
        }
    }
    // Words of even / odd outputs -> int32 in output order. unpacklo gives outputs 0-7 | 16-23,
    // unpackhi 8-15 | 24-31 (per 128-bit lane).
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kVecs; ++v) {
        const __m256i even = _mm256_sub_epi16(a16[r][v], _mm256_slli_epi16(b16[r][v], 8));
        const __m256i lo = _mm256_unpacklo_epi16(even, b16[r][v]), hi = _mm256_unpackhi_epi16(even, b16[r][v]);
        const __m256i part[4] = {_mm256_cvtepu16_epi32(_mm256_castsi256_si128(lo)),
                                 _mm256_cvtepu16_epi32(_mm256_castsi256_si128(hi)),
                                 _mm256_cvtepu16_epi32(_mm256_extracti128_si256(lo, 1)),
                                 _mm256_cvtepu16_epi32(_mm256_extracti128_si256(hi, 1))};
        int32_t* dst = u + r * ldu + 32 * v;
        for (int i = 0; i < 4; ++i) {
          __m256i* d = reinterpret_cast<__m256i*>(dst + 8 * i);
          _mm256_storeu_si256(d, s0 == 0 ? part[i] : _mm256_add_epi32(_mm256_loadu_si256(d), part[i]));
        }
      }
  }
}

// r[i] = row i of an 8 x 8 int32 block -> r[i] = column i.
inline void transpose8(__m256i r[8]) {
  __m256i t[8], s[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    s[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
    s[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
    s[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
    s[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2x128_si256(s[i], s[i + 4], 0x20);
    r[i + 4] = _mm256_permute2x128_si256(s[i], s[i + 4], 0x31);
  }
}

// r[i] = 16 bytes of row i -> r[q] = byte q of every row (four rounds of unpacks).
inline void transpose16x16(__m128i r[16]) {
  __m128i t[16];
  for (int i = 0; i < 8; ++i) {
    t[i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);      // rows 2i, 2i+1: q 0-7
    t[i + 8] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);  // q 8-15
  }
  for (int i = 0; i < 4; ++i) {  // r[4j + i]: rows 4i .. 4i+3, q 4j .. 4j+3
    r[i] = _mm_unpacklo_epi16(t[2 * i], t[2 * i + 1]);
    r[i + 4] = _mm_unpackhi_epi16(t[2 * i], t[2 * i + 1]);
    r[i + 8] = _mm_unpacklo_epi16(t[2 * i + 8], t[2 * i + 9]);
    r[i + 12] = _mm_unpackhi_epi16(t[2 * i + 8], t[2 * i + 9]);
  }
  for (int j = 0; j < 4; ++j)
    for (int i = 0; i < 2; ++i) {  // t[4j + 2i + h]: rows 8i .. 8i+7, q 4j + 2h, 4j + 2h + 1
      t[4 * j + 2 * i] = _mm_unpacklo_epi32(r[4 * j + 2 * i], r[4 * j + 2 * i + 1]);
      t[4 * j + 2 * i + 1] = _mm_unpackhi_epi32(r[4 * j + 2 * i], r[4 * j + 2 * i + 1]);
    }
  for (int j = 0; j < 4; ++j)
    for (int h = 0; h < 2; ++h) {
      r[4 * j + 2 * h] = _mm_unpacklo_epi64(t[4 * j + h], t[4 * j + 2 + h]);
      r[4 * j + 2 * h + 1] = _mm_unpackhi_epi64(t[4 * j + h], t[4 * j + 2 + h]);
    }
}

// U[row][q] -> acc' = g * U + s_min * window[q], the integer every kernel computes, for table
// rows [0, rows) and the chunk's first `count` outputs (in place; what both epilogues read).
void finish_sums(const ConvCodesWeights& w, int32_t* u, const int32_t* window, int64_t ldu, int64_t rows,
                 int64_t count) {
  if (w.pair_g == 1 && !w.pair_window) return;
  const __m256i g = _mm256_set1_epi32(w.pair_g), smin = _mm256_set1_epi32(w.pair_min);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t i = 0; i < count; i += 8) {
      __m256i* d = reinterpret_cast<__m256i*>(u + n * ldu + i);
      __m256i acc = _mm256_mullo_epi32(_mm256_loadu_si256(d), g);
      if (w.pair_window)
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(smin, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(window + i))));
      _mm256_storeu_si256(d, acc);
    }
}

// The codes epilogue channel-major, with no transposition of int32 sums: per channel row n, 32
// outputs at a time, acc' -> codes (the scalar epilogue's float expressions) -> 32 bytes of
// codes[n][q]. Then 16 x 16 byte blocks transposed into each valid output's 16 channels.
// u: acc' (finish_sums), rows16 x ldu int32.
void codes_epilogue(const ConvCodesProblem& p, const Geometry& g, const int32_t* u, int64_t ldu, int64_t rows16,
                    int64_t q0, int64_t count, uint8_t* codes) {
  const ConvCodesWeights& w = *p.w;
  const ConvCodesShape& sh = p.shape;
  const __m256 zero = _mm256_setzero_ps(), maxc = _mm256_set1_ps(static_cast<float>(p.ep.max_code_out));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t n = 0; n < rows16; ++n) {
    const __m256 scale = _mm256_set1_ps(p.scale_pad[n]), bias = _mm256_set1_ps(p.bias_pad[n]);
    for (int64_t i0 = 0; i0 < count; i0 += 32) {
      __m256i c[4];
      for (int v = 0; v < 4; ++v) {
        const __m256i acc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + n * ldu + i0 + 8 * v));
        const __m256 y = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale), bias);
        __m256 q = _mm256_round_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm256_min_ps(_mm256_max_ps(q, zero), maxc);
        c[v] = _mm256_cvttps_epi32(q);
      }
      const __m256i b = _mm256_packus_epi16(_mm256_packus_epi32(c[0], c[1]), _mm256_packus_epi32(c[2], c[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + n * ldu + i0), _mm256_permutevar8x32_epi32(b, order));
    }
  }
  uint8_t* out = static_cast<uint8_t*>(p.out);
  OutputCursor cursor(g, sh, q0);
  for (int64_t i0 = 0; i0 < count; i0 += 16) {
    int64_t pixel[16];
    if (!cursor.next(16, count - i0, pixel)) continue;
    for (int64_t n0 = 0; n0 < rows16; n0 += 16) {
      __m128i r[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + (n0 + i) * ldu + i0));
      transpose16x16(r);
      const int64_t valid = std::min<int64_t>(16, w.out_channels - n0);
      for (int i = 0; i < 16; ++i) {
        if (pixel[i] < 0) continue;
        uint8_t* dst = out + pixel[i] * p.ldo + n0;
        if (valid == 16) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), r[i]);
        } else {
          alignas(16) uint8_t tmp[16];
          _mm_store_si128(reinterpret_cast<__m128i*>(tmp), r[i]);
          std::memcpy(dst, tmp, static_cast<size_t>(valid));
        }
      }
    }
  }
}

}  // namespace

void conv_codes_pair_lut(const ConvCodesProblem& p, int64_t images) {
  const ConvCodesWeights& w = *p.w;
  const ConvCodesShape& sh = p.shape;
  const Geometry g = geometry(p, images);
  const std::vector<int64_t> off = step_offsets(p, g);
  // Zero-initialised: the pixel-less places of the planes read as code pairs (0, 0).
  AlignedBytes planes(static_cast<size_t>(g.planes * g.plane_bytes));
  const int64_t image_grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, sh.height * sh.width * sh.channels));
  parallel_for(0, images, image_grain,
               [&](int64_t i0, int64_t i1) { pack_planes(p, g, i0, i1, planes.data()); });

  // The codes epilogue works on 16 channel rows at a time (the tables have n_blocks * 16 rows);
  // the others transpose 8 x 8 blocks of sums.
  const bool codes_out = p.ep.kind == EpilogueKind::codes;
  const int64_t rows8 = codes_out ? w.n_blocks * kBlockChannels : (w.out_channels + 7) / 8 * 8;
  const int64_t window_row = w.n_blocks * kBlockChannels;
  const int64_t flush_steps = 255 / w.pair_max_entry;
  const int64_t segment_steps = std::max<int64_t>(flush_steps, 65535 / w.pair_max_entry / flush_steps * flush_steps);
  const int64_t chunks = (g.total + kChunkOut - 1) / kChunkOut;
  const int64_t macs_per_chunk = kChunkOut * w.out_channels * w.k;
  const int64_t grain = std::max<int64_t>(1, (int64_t{2} << 20) / std::max<int64_t>(1, macs_per_chunk));
  parallel_for(0, chunks, grain, [&](int64_t c0, int64_t c1) {
    constexpr int64_t ldu = kChunkOut;
    std::vector<int32_t> ubuf(static_cast<size_t>((rows8 + 1) * ldu));
    std::vector<uint8_t> codes(codes_out ? static_cast<size_t>(rows8 * ldu) : 0);
    int32_t* u = ubuf.data();
    int32_t* window = u + rows8 * ldu;
    const YmmEpilogue e(p);
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t q0 = c * kChunkOut;
      const int tiles = static_cast<int>(std::min<int64_t>(kChunkTiles, (g.total - q0 + kTileOut - 1) / kTileOut));
      for (int64_t row = 0; row < rows8; row += kRows)
        for (int t = 0; t < tiles; ++t)
          tile<kRows>(w, planes.data(), off.data(), q0 + t * kTileOut, row, flush_steps, segment_steps,
                      u + row * ldu + t * kTileOut, ldu);
      if (w.pair_window)
        for (int t = 0; t < tiles; ++t)
          tile<1>(w, planes.data(), off.data(), q0 + t * kTileOut, window_row, flush_steps, segment_steps,
                  window + t * kTileOut, ldu);
      const int64_t count = std::min<int64_t>(kChunkOut, g.total - q0);
      finish_sums(w, u, window, ldu, rows8, count);
      if (codes_out) {
        codes_epilogue(p, g, u, ldu, rows8, q0, count, codes.data());
        continue;
      }
      // The valid outputs, 8 at a time: each 8 x 8 block of U transposed to 8 outputs' channels.
      OutputCursor cursor(g, sh, q0);
      for (int64_t i0 = 0; i0 < count; i0 += 8) {
        int64_t pixel[8];
        if (!cursor.next(8, count - i0, pixel)) continue;
        for (int64_t n0 = 0; n0 < rows8; n0 += 8) {
          __m256i r[8];
          for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + (n0 + i) * ldu + i0));
          transpose8(r);
          for (int i = 0; i < 8; ++i)
            if (pixel[i] >= 0) e.store8(pixel[i], n0, r[i]);
        }
      }
    }
  });
}

}  // namespace lowbit::kernels::detail::avx2
