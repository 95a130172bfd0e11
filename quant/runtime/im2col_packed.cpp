// im2col_packed.cpp: NHWC codes -> packed activation rows + row sums (see im2col_packed.h).
// Plain C++ on the baseline ISA: the work is O(rows * K) byte moves against the O(rows * K * N)
// GEMM, so it only has to avoid per-code bit fiddling, extra passes and allocation.
#include "quant/runtime/im2col_packed.h"

#include <algorithm>
#include <cstring>

namespace lowbit::intq {

namespace {

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Packs n codes (each <= 2^bits - 1) into little-endian bit fields: ceil(n * bits / 8) bytes.
// Eight codes at a time in one 64-bit word: OR-ing shifted copies gathers each byte's fields.
void pack_codes(const uint8_t* src, int64_t n, int bits, uint8_t* dst) {
  if (bits == 8) {
    std::memcpy(dst, src, static_cast<size_t>(n));
    return;
  }
  int64_t i = 0, t = 0;
  if (bits == 4) {
    for (; i + 8 <= n; i += 8, t += 4) {
      uint64_t x;
      std::memcpy(&x, src + i, 8);
      x |= x >> 4;  // byte 2j = c[2j] | c[2j+1] << 4
      dst[t] = static_cast<uint8_t>(x);
      dst[t + 1] = static_cast<uint8_t>(x >> 16);
      dst[t + 2] = static_cast<uint8_t>(x >> 32);
      dst[t + 3] = static_cast<uint8_t>(x >> 48);
    }
  } else {
    for (; i + 8 <= n; i += 8, t += 2) {
      uint64_t x;
      std::memcpy(&x, src + i, 8);
      x |= x >> 6;   // byte j = c[j] | c[j+1] << 2
      x |= x >> 12;  // byte 4j = c[4j] | c[4j+1] << 2 | c[4j+2] << 4 | c[4j+3] << 6
      dst[t] = static_cast<uint8_t>(x);
      dst[t + 1] = static_cast<uint8_t>(x >> 32);
    }
  }
  const int per_byte = kernels::codes_per_byte(bits);
  for (; i < n; i += per_byte, ++t) {
    uint8_t b = 0;
    for (int j = 0; j < per_byte && i + j < n; ++j) b = static_cast<uint8_t>(b | src[i + j] << (bits * j));
    dst[t] = b;
  }
}

// Sum of the codes packed in one 64-bit word, SWAR: fold neighbouring fields into wider lanes
// until the lanes can be summed by one multiply (2/4-bit: byte lanes <= 30, total < 256; 8-bit:
// 16-bit lanes <= 510, total < 2^16).
inline int32_t word_code_sum(uint64_t x, int bits) {
  constexpr uint64_t k2 = 0x3333333333333333, k4 = 0x0F0F0F0F0F0F0F0F, k8 = 0x00FF00FF00FF00FF;
  if (bits == 2) x = (x & k2) + ((x >> 2) & k2);
  if (bits <= 4) {
    x = (x & k4) + ((x >> 4) & k4);
    return static_cast<int32_t>((x * 0x0101010101010101) >> 56);
  }
  x = (x & k8) + ((x >> 8) & k8);
  return static_cast<int32_t>((x * 0x0001000100010001) >> 48);
}

// Sum of the codes in n packed bytes (fields past the last code must be zero).
int32_t sum_packed(const uint8_t* p, int64_t n, int bits) {
  int32_t s = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    std::memcpy(&x, p + i, 8);
    s += word_code_sum(x, bits);
  }
  uint64_t tail = 0;
  for (int64_t j = 0; i + j < n; ++j) tail |= static_cast<uint64_t>(p[i + j]) << (8 * j);
  return s + word_code_sum(tail, bits);
}

// Copies n bytes in 8-byte words, writing and reading up to 7 bytes past the end: rows are built
// in increasing address order and both buffers carry slack, so the overshoot is overwritten
// (or lands in slack) and tiny copies cost no memcpy call.
inline void copy_words(uint8_t* dst, const uint8_t* src, int64_t n) {
  for (int64_t o = 0; o < n; o += 8) std::memcpy(dst + o, src + o, 8);
}

// Zeroes [from, to) of a row, to - from < 16 (the K padding is under kPadK codes), with two
// word stores that may overshoot like copy_words (no loop: a loop becomes a memset call).
inline void zero_pad(uint8_t* row, int64_t from, int64_t to) {
  static_assert(kernels::kPadK <= 16);
  const uint64_t zero = 0;
  if (from < to) std::memcpy(row + from, &zero, 8);
  if (from + 8 < to) std::memcpy(row + from + 8, &zero, 8);
}

// The rows of one image from its bordered packed pixels, one kernel row (kh) at a time across
// an output row: the inner loop then moves one run per row with three live pointers (an output
// row of rows stays in L1 between the kh passes). KERNEL: the kernel size when known at compile
// time (0 = g.kernel), so the kw sum unrolls; SHORT_RUN: a run fits one 8-byte word.
template <int KERNEL, bool SHORT_RUN>
void rows_of_image(const ConvGeometry& g, const uint8_t* pixels, const int32_t* pixel_sums, int64_t wp, int64_t r0,
                   kernels::PackedActivations& a) {
  const int64_t K = KERNEL > 0 ? KERNEL : g.kernel, S = g.stride;
  const int64_t pixel_bytes = g.channels * g.bits / 8, run_bytes = K * pixel_bytes, k_bytes = K * run_bytes;
  const int64_t k_pad_bytes = a.k_pad * g.bits / 8, row_stride = a.row_stride, line_bytes = wp * pixel_bytes;
  const int64_t step = S * pixel_bytes, out_h = g.out_height, out_w = g.out_width;
  // Every value the loops read lives in a local: stores through uint8_t* may alias anything,
  // so fields read through g or a would be reloaded after each store.
  uint8_t* const rows = a.data.data();
  int32_t* const row_sums = a.row_sums.data();
  for (int64_t oh = 0; oh < out_h; ++oh) {
    const int64_t r = r0 + oh * out_w;
    for (int64_t kh = 0; kh < K; ++kh) {
      const uint8_t* src = pixels + (oh * S + kh) * line_bytes;
      const int32_t* ps = pixel_sums + (oh * S + kh) * wp;
      uint8_t* dst = rows + r * row_stride + kh * run_bytes;
      int32_t* rs = row_sums + r;
      for (int64_t ow = 0; ow < out_w; ++ow) {
        if constexpr (SHORT_RUN)
          std::memcpy(dst, src, 8);
        else
          copy_words(dst, src, run_bytes);
        int32_t sum = 0;
        for (int64_t kw = 0; kw < K; ++kw) sum += ps[kw];
        rs[ow] = kh == 0 ? sum : rs[ow] + sum;
        src += step;
        ps += S;
        dst += row_stride;
      }
    }
    // K padding (and the last run's overshoot): after all runs of the output row.
    for (int64_t ow = 0; ow < out_w; ++ow) zero_pad(rows + (r + ow) * row_stride, k_bytes, k_pad_bytes);
  }
}

// Pixels whose codes fill whole bytes: pack each input pixel once into an image bordered by
// `padding` pixels of pad codes; row (oh, ow) is then `kernel` contiguous runs of kernel*C codes.
void im2col_whole_bytes(const uint8_t* x, int64_t images, const ConvGeometry& g, Im2colScratch& s,
                        kernels::PackedActivations& a) {
  const int64_t C = g.channels, P = g.padding;
  const int64_t pixel_bytes = C * g.bits / 8;
  const int64_t hp = g.height + 2 * P, wp = g.width + 2 * P;
  s.pixels.resize(static_cast<size_t>(hp * wp * pixel_bytes + 8));  // + 8: copy_words over-read
  s.pixel_sums.resize(static_cast<size_t>(hp * wp));
  uint8_t pad_byte = 0;
  for (int j = 0; j < kernels::codes_per_byte(g.bits); ++j) pad_byte = static_cast<uint8_t>(pad_byte | g.pad_code << (g.bits * j));
  std::memset(s.pixels.data(), pad_byte, s.pixels.size());
  std::fill(s.pixel_sums.begin(), s.pixel_sums.end(), static_cast<int32_t>(C) * g.pad_code);
  const int64_t hw_out = g.out_height * g.out_width;
  for (int64_t img = 0; img < images; ++img) {
    const uint8_t* xi = x + img * g.height * g.width * C;
    for (int64_t ih = 0; ih < g.height; ++ih) {
      const uint8_t* src = xi + ih * g.width * C;
      const int64_t p0 = (ih + P) * wp + P;
      uint8_t* packed = s.pixels.data() + p0 * pixel_bytes;
      pack_codes(src, g.width * C, g.bits, packed);
      int32_t* sums = s.pixel_sums.data() + p0;
      if (pixel_bytes == 1 && g.bits == 8)
        for (int64_t iw = 0; iw < g.width; ++iw) sums[iw] = src[iw];
      else if (pixel_bytes % 8 == 0)
        for (int64_t iw = 0; iw < g.width; ++iw) {
          int32_t sum = 0;
          for (int64_t o = 0; o < pixel_bytes; o += 8) {
            uint64_t word;
            std::memcpy(&word, packed + iw * pixel_bytes + o, 8);
            sum += word_code_sum(word, g.bits);
          }
          sums[iw] = sum;
        }
      else
        for (int64_t iw = 0; iw < g.width; ++iw) sums[iw] = sum_packed(packed + iw * pixel_bytes, pixel_bytes, g.bits);
    }
    const uint8_t* px = s.pixels.data();
    const int32_t* ps = s.pixel_sums.data();
    const bool short_run = g.kernel * pixel_bytes <= 8;
    if (g.kernel == 3 && short_run) rows_of_image<3, true>(g, px, ps, wp, img * hw_out, a);
    else if (g.kernel == 3) rows_of_image<3, false>(g, px, ps, wp, img * hw_out, a);
    else if (g.kernel == 1) rows_of_image<1, false>(g, px, ps, wp, img * hw_out, a);
    else rows_of_image<0, false>(g, px, ps, wp, img * hw_out, a);
  }
}

// Any other shape: gather the row's codes, then pack them (rows in order, so the word overshoot
// of zero_pad only touches the next row before it is written).
void im2col_any(const uint8_t* x, int64_t images, const ConvGeometry& g, Im2colScratch& s,
                kernels::PackedActivations& a) {
  const int64_t C = g.channels, K = g.kernel, k = g.k();
  const int64_t k_pad_bytes = a.k_pad * g.bits / 8, k_bytes = (k * g.bits + 7) / 8;
  s.pixels.resize(static_cast<size_t>(k));
  const int64_t hw_out = g.out_height * g.out_width;
  for (int64_t img = 0; img < images; ++img) {
    const uint8_t* xi = x + img * g.height * g.width * C;
    for (int64_t oh = 0; oh < g.out_height; ++oh)
      for (int64_t ow = 0; ow < g.out_width; ++ow) {
        for (int64_t kh = 0; kh < K; ++kh) {
          const int64_t ih = oh * g.stride - g.padding + kh;
          for (int64_t kw = 0; kw < K; ++kw) {
            const int64_t iw = ow * g.stride - g.padding + kw;
            uint8_t* dst = s.pixels.data() + (kh * K + kw) * C;
            if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width)
              std::memset(dst, g.pad_code, static_cast<size_t>(C));
            else
              std::memcpy(dst, xi + (ih * g.width + iw) * C, static_cast<size_t>(C));
          }
        }
        const int64_t r = img * hw_out + oh * g.out_width + ow;
        uint8_t* row = a.data.data() + r * a.row_stride;
        pack_codes(s.pixels.data(), k, g.bits, row);
        zero_pad(row, k_bytes, k_pad_bytes);
        a.row_sums[static_cast<size_t>(r)] = sum_packed(row, k_bytes, g.bits);
      }
  }
}

}  // namespace

void prepare_packed_activations(kernels::PackedActivations& a, int64_t m, int64_t k, int bits) {
  a.bits = bits;
  a.m = m;
  a.k = k;
  a.k_pad = round_up(k, kernels::kPadK);
  a.row_stride = round_up(a.k_pad * bits / 8, 64);
  if (a.row_stride % 4096 == 0) a.row_stride += 64;  // as pack_activations: no 4 KiB aliasing
  const size_t bytes = static_cast<size_t>(m * a.row_stride + 64);  // + 64: copy_words overshoot
  if (a.data.size() < bytes) a.data = kernels::AlignedBytes(bytes);
  if (a.row_sums.size() < static_cast<size_t>(m)) a.row_sums.resize(static_cast<size_t>(m));
}

void im2col_packed(const uint8_t* x, int64_t images, const ConvGeometry& g, Im2colScratch& scratch,
                   kernels::PackedActivations& a) {
  prepare_packed_activations(a, images * g.out_height * g.out_width, g.k(), g.bits);
  // The whole-bytes path writes the rows of an output line in several passes, so its word
  // overshoot (< 8 bytes past the K padding) must stay inside the row's stride.
  if (g.channels * g.bits % 8 == 0 && a.k_pad * g.bits / 8 + 8 <= a.row_stride)
    im2col_whole_bytes(x, images, g, scratch, a);
  else
    im2col_any(x, images, g, scratch, a);
}

void pack_rows(const uint8_t* codes, int64_t m, int64_t k, int64_t ld, int bits, kernels::PackedActivations& a) {
  prepare_packed_activations(a, m, k, bits);
  const int64_t k_pad_bytes = a.k_pad * bits / 8, k_bytes = (k * bits + 7) / 8;
  for (int64_t r = 0; r < m; ++r) {
    uint8_t* row = a.data.data() + r * a.row_stride;
    pack_codes(codes + r * ld, k, bits, row);
    zero_pad(row, k_bytes, k_pad_bytes);
    a.row_sums[static_cast<size_t>(r)] = sum_packed(row, k_bytes, bits);
  }
}

}  // namespace lowbit::intq
