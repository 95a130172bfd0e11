// conv_codes.cpp: the signed weight panels, the argument and overflow checks, the per-call
// epilogue tables, the scalar reference and the dispatch of output rows to the ISA kernels.
#include "quant/kernels/conv_codes.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/kernels/conv_codes_internal.h"
#include "quant/kernels/kernel_table.h"

namespace lowbit::kernels {

namespace {

int32_t signed_weight(const PackedWeights& w, int32_t acc_mul, int32_t rowsum_mul, int64_t n, int64_t k) {
  return acc_mul * weight_code(w, n, k) + rowsum_mul;
}

bool fits_s8(int64_t lo, int64_t hi) { return lo >= -128 && hi <= 127; }

// s = acc_mul * m + rowsum_mul over m in [0, max]: its range, and that of s' when split.
struct WeightRange {
  bool direct = false, split = false;
};
WeightRange weight_range(const PackedWeights& w, int32_t acc_mul, int32_t rowsum_mul) {
  const int64_t a = rowsum_mul, b = static_cast<int64_t>(acc_mul) * max_code(w.bits) + rowsum_mul;
  WeightRange r;
  r.direct = fits_s8(std::min(a, b), std::max(a, b));
  // s = 2 (m + floor(r0 / 2)) + (r0 mod 2): s' = m + floor(r0 / 2).
  const int64_t half = rowsum_mul >= 0 ? rowsum_mul / 2 : -((-rowsum_mul + 1) / 2);
  r.split = acc_mul == 2 && fits_s8(half, half + max_code(w.bits));
  return r;
}

int64_t round_up4(int64_t c) { return (c + 3) / 4 * 4; }

// The pair tables (conv_codes.h): s = g m + s_min with g the gcd of (s - s_min) over the real
// weights, so every m >= 0 and entry a + 4 a' = m_c a + m_{c+1} a' <= 6 max m. Built only when a
// byte holds at least kPairMinSteps entries before it must be widened (below that, the table
// kernel is no faster than the byte multiply).
constexpr int kPairMinSteps = 6;

void add_pair_tables(const PackedWeights& w, int32_t acc_mul, int32_t rowsum_mul, int64_t in_channels,
                     ConvCodesWeights& cw) {
  int32_t lo = 0, hi = 0;
  bool first = true;
  for (int64_t n = 0; n < w.n; ++n)
    for (int64_t k = 0; k < w.k; ++k) {
      const int32_t s = signed_weight(w, acc_mul, rowsum_mul, n, k);
      lo = first ? s : std::min(lo, s);
      hi = first ? s : std::max(hi, s);
      first = false;
    }
  int32_t g = 0;
  for (int64_t n = 0; n < w.n; ++n)
    for (int64_t k = 0; k < w.k; ++k) g = std::gcd(g, signed_weight(w, acc_mul, rowsum_mul, n, k) - lo);
  if (g == 0) g = 1;
  const int32_t max_m = (hi - lo) / g, max_entry = 2 * max_m * 3;
  if (max_entry > 0 && 255 / max_entry < kPairMinSteps) return;
  const int64_t C4 = cw.in_channels, pairs = C4 / 2, taps = cw.kernel * cw.kernel;
  cw.pair_steps = taps * pairs;
  cw.pair_g = g;
  cw.pair_min = lo;
  cw.pair_max_entry = std::max(max_entry, 6);  // the window row's entries reach 6
  cw.pair_window = lo != 0;
  cw.pair_tables = AlignedBytes(static_cast<size_t>(cw.pair_rows() * cw.pair_steps * 16));
  // m of weight (n, padded k); padding channels read code 0, so their m may be anything: 0.
  std::vector<int32_t> m(static_cast<size_t>(taps * C4));
  for (int64_t row = 0; row < cw.pair_rows(); ++row) {
    const bool window = row == cw.n_blocks * kBlockChannels;
    std::fill(m.begin(), m.end(), 0);
    if (window || row < w.n)
      for (int64_t k = 0; k < w.k; ++k)
        m[static_cast<size_t>((k / in_channels) * C4 + k % in_channels)] =
            window ? 1 : (signed_weight(w, acc_mul, rowsum_mul, row, k) - lo) / g;
    for (int64_t step = 0; step < cw.pair_steps; ++step) {
      uint8_t* t = cw.pair_tables.data() + cw.pair_entry_offset(row, step);
      for (int i = 0; i < 16; ++i)
        t[i] = static_cast<uint8_t>(m[static_cast<size_t>(2 * step)] * (i & 3) +
                                    m[static_cast<size_t>(2 * step + 1)] * (i >> 2));
    }
  }
}

}  // namespace

bool conv_codes_fits(const PackedWeights& w, int32_t acc_mul, int32_t rowsum_mul, int64_t in_channels) {
  if (in_channels <= 0 || w.k % in_channels != 0) return false;
  const WeightRange r = weight_range(w, acc_mul, rowsum_mul);
  return r.direct || r.split;
}

ConvCodesWeights pack_conv_codes_weights(const PackedWeights& w, int32_t acc_mul, int32_t rowsum_mul,
                                         int64_t in_channels, int64_t kernel, int act_bits) {
  LOWBIT_CHECK(conv_codes_fits(w, acc_mul, rowsum_mul, in_channels) && w.k == kernel * kernel * in_channels,
               "conv_codes: weights (", w.n, " x ", w.k, ", ", w.bits, "-bit, acc_mul ", acc_mul, ", rowsum_mul ",
               rowsum_mul, ") are not ", kernel, "x", kernel, "x", in_channels, " signed bytes");
  const WeightRange range = weight_range(w, acc_mul, rowsum_mul);
  ConvCodesWeights cw;
  cw.out_channels = w.n;
  cw.source_channels = in_channels;
  cw.in_channels = round_up4(in_channels);
  cw.kernel = kernel;
  cw.k = kernel * kernel * cw.in_channels;
  cw.k_padded = (cw.k + 63) / 64 * 64;
  cw.n_blocks = (w.n + kBlockChannels - 1) / kBlockChannels;
  cw.split = !range.direct;
  cw.window_term = cw.split ? ((rowsum_mul % 2) != 0 ? 1 : 0) : 0;
  LOWBIT_CHECK(act_bits >= 1 && act_bits <= 8, "conv_codes: act_bits must be 1..8, got ", act_bits);
  cw.data = AlignedBytes(static_cast<size_t>(cw.n_blocks * cw.block_bytes()));
  auto* dst = reinterpret_cast<int8_t*>(cw.data.data());
  for (int64_t n = 0; n < w.n; ++n)
    for (int64_t k = 0; k < w.k; ++k) {
      int32_t s = signed_weight(w, acc_mul, rowsum_mul, n, k);
      if (cw.split) s = (s - cw.window_term) / 2;  // exact: s - t is even
      cw.max_abs = std::max(cw.max_abs, std::abs(s));
      const int64_t tap = k / in_channels, c = k % in_channels, kp = tap * cw.in_channels + c;
      const int64_t nb = n / kBlockChannels, lane = n % kBlockChannels;
      dst[nb * cw.block_bytes() + (kp / 4) * 64 + lane * 4 + kp % 4] = static_cast<int8_t>(s);
    }
  for (int64_t nb = 0; nb < cw.n_blocks; ++nb)
    for (int64_t i = 0; i < cw.block_bytes(); i += 2)
      cw.max_pair_abs = std::max(cw.max_pair_abs, std::abs(int{cw.block(nb)[i]}) + std::abs(int{cw.block(nb)[i + 1]}));
  if (act_bits <= 2 && !cw.split) add_pair_tables(w, acc_mul, rowsum_mul, in_channels, cw);
  return cw;
}

namespace detail {

bool always_applies(const ConvCodesWeights&, int) { return true; }

// vpmaddubsw adds two u8 x s8 products into int16 with saturation; vpdpbusd does not saturate.
bool maddubs_exact(const ConvCodesWeights& w, int act_bits) { return max_code(act_bits) * w.max_pair_abs <= 32767; }

// Below 16 pair steps (a 1x1 conv of 16 channels) the planes and the epilogue outweigh the
// cheaper multiplies: `lowbit bench conv` measured it level with the byte multiply.
bool pair_lut_applies(const ConvCodesWeights& w, int act_bits) { return act_bits <= 2 && w.pair_steps >= 16; }

// Output rows of the whole batch in parallel tasks of at least ~2M multiply-adds (finer ones
// cost more in scheduling than they compute); the ymm levels get their window sums here.
void run_rows(const ConvCodesProblem& p, int64_t images, RowsFn rows_fn, WindowSumsFn window_sums_fn) {
  const ConvCodesShape& s = p.shape;
  const int64_t rows = images * s.out_height;
  const int64_t macs_per_row = s.out_width * p.w->out_channels * p.w->k;
  const int64_t grain = std::max<int64_t>(1, (int64_t{2} << 20) / std::max<int64_t>(1, macs_per_row));
  parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    ConvCodesProblem task = p;
    std::vector<int32_t> sums;
    if (p.w->split && window_sums_fn) {
      sums.resize(static_cast<size_t>((r1 - r0) * s.out_width));
      window_sums_fn(p, r0, r1, sums.data());
      task.window_sums = sums.data();
      task.window_pixel0 = r0 * s.out_width;
    }
    rows_fn(task, r0, r1);
  });
}

namespace ref {
ConvCodesKernelTable kernels() {
  static const ConvCodesKernel rows[] = {{"scalar.reference", always_applies, run_rows_of<conv_codes_rows, nullptr>}};
  return {rows, 1};
}
}  // namespace ref

}  // namespace detail

ConvCodesKernelTable conv_codes_kernels(Isa isa) { return kernel_table(isa).conv; }

const ConvCodesKernel* conv_codes_kernel(Isa isa, const ConvCodesWeights& w, int act_bits) {
  if (!isa_supported(isa)) return nullptr;
  const ConvCodesKernelTable t = conv_codes_kernels(isa);
  for (int i = 0; i < t.count; ++i)
    if (t.rows[i].applies(w, act_bits)) return &t.rows[i];
  return nullptr;
}

const ConvCodesKernel* fastest_conv_codes_kernel(Isa isa, const ConvCodesShape& s, const ConvCodesWeights& w,
                                                 EpilogueKind kind, int64_t images) {
  if (!isa_supported(isa)) return nullptr;
  const ConvCodesKernelTable t = conv_codes_kernels(isa);
  std::vector<const ConvCodesKernel*> rows;
  for (int i = 0; i < t.count; ++i)
    if (t.rows[i].applies(w, s.act_bits)) rows.push_back(&t.rows[i]);
  if (rows.size() < 2) return rows.empty() ? nullptr : rows[0];
  // Codes of the layer's range (a fixed pattern: speed does not depend on the values).
  std::vector<uint8_t> x(static_cast<size_t>(images * s.height * s.width * s.channels));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>((i * 2654435761u >> 7) % (max_code(s.act_bits) + 1u));
  const std::vector<float> scale(static_cast<size_t>(w.out_channels), 0.01f), bias(static_cast<size_t>(w.out_channels), 0.5f);
  Epilogue ep;
  ep.kind = kind;
  ep.scale = scale.data();
  ep.bias = bias.data();
  ep.max_code_out = 3;
  std::vector<int32_t> out(static_cast<size_t>(images * s.out_height * s.out_width * w.out_channels));
  std::vector<double> best(rows.size(), 1e30);
  for (int rep = 0; rep < 4; ++rep)  // rounds alternate the kernels; the first is a warm-up
    for (size_t k = 0; k < rows.size(); ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      conv_codes_with(*rows[k], x.data(), images, s, w, ep, out.data(), w.out_channels);
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep > 0) best[k] = std::min(best[k], dt);
    }
  size_t pick = 0;
  for (size_t k = 1; k < rows.size(); ++k)
    if (best[k] < 0.95 * best[pick]) pick = k;
  return rows[pick];
}

void drop_unused_pair_tables(ConvCodesWeights& w, const ConvCodesKernel* kept) {
  if (kept != nullptr && kept->reads_pair_tables) return;
  w.pair_tables = AlignedBytes();
  w.pair_steps = 0;
}

bool conv_codes_supported(Isa isa, const ConvCodesWeights& w, int act_bits) {
  return conv_codes_kernel(isa, w, act_bits) != nullptr;
}

namespace detail::ref {

// The ground truth: one output at a time, every tap and channel read through plain indexing,
// then the scalar epilogue of gemm_ref.cpp's formula.
void conv_codes_rows(const ConvCodesProblem& p, int64_t row0, int64_t row1) {
  const ConvCodesShape& s = p.shape;
  const ConvCodesWeights& w = *p.w;
  const int64_t C = s.channels, K = w.kernel;
  const float maxc = static_cast<float>(p.ep.max_code_out);
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t img = row / s.out_height, oh = row % s.out_height;
    for (int64_t ow = 0; ow < s.out_width; ++ow) {
      const int64_t pixel = row * s.out_width + ow;
      for (int64_t n = 0; n < w.out_channels; ++n) {
        const int8_t* wn = w.block(n / kBlockChannels);
        int32_t acc = 0, window = 0;
        for (int64_t kh = 0; kh < K; ++kh)
          for (int64_t kw = 0; kw < K; ++kw)
            for (int64_t c = 0; c < C; ++c) {
              const int64_t k = (kh * K + kw) * C + c;
              const uint8_t a = p.x[((img * s.height + oh * s.stride + kh) * s.width + ow * s.stride + kw) * C + c];
              acc += wn[(k / 4) * 64 + (n % kBlockChannels) * 4 + k % 4] * static_cast<int32_t>(a);
              window += a;
            }
        if (w.split) acc = 2 * acc + w.window_term * window;
        const int64_t off = pixel * p.ldo + n;
        if (p.ep.kind == EpilogueKind::int32) {
          static_cast<int32_t*>(p.out)[off] = acc;
          continue;
        }
        const float t = static_cast<float>(acc) * p.scale_pad[n];
        float y = t + p.bias_pad[n];
        if (p.ep.kind == EpilogueKind::float32) {
          if (p.fuse.residual) y = y + p.fuse.residual[off];
          if (p.fuse.relu) y = std::max(y, 0.f);
          static_cast<float*>(p.out)[off] = y;
          for (int q = 0; q < p.fuse.code_outputs; ++q)
            quantize_codes_reference(p.fuse.codes[q].map, &y, 1, p.fuse.codes[q].out + off);
        } else {
          float q = std::nearbyint(y);
          q = q < 0.f ? 0.f : q;
          q = q > maxc ? maxc : q;
          static_cast<uint8_t*>(p.out)[off] = static_cast<uint8_t>(q);
        }
      }
    }
  }
}

// Sum of the codes in each output pixel's receptive field (rows [row0, row1) of the batch),
// for split weights: the term t * window the kernels add to 2 * sum s' a. Per tap row: the code
// sum of each input pixel of the line, then kernel of them per output (independent sums, no
// serial prefix chain).
void window_sums(const ConvCodesProblem& p, int64_t row0, int64_t row1, int32_t* out) {
  const ConvCodesShape& s = p.shape;
  const int64_t C = s.channels, K = p.w->kernel, W = s.width, S = s.stride, OW = s.out_width;
  thread_local std::vector<int32_t> pixel_sums_buffer;
  pixel_sums_buffer.resize(static_cast<size_t>(W));
  int32_t* const ps = pixel_sums_buffer.data();
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t img = row / s.out_height, oh = row % s.out_height;
    int32_t* o = out + (row - row0) * OW;
    for (int64_t ow = 0; ow < OW; ++ow) o[ow] = 0;
    for (int64_t kh = 0; kh < K; ++kh) {
      const uint8_t* line = p.x + (img * s.height + oh * S + kh) * W * C;
      for (int64_t iw = 0; iw < W; ++iw) {
        int32_t sum = 0;
        for (int64_t c = 0; c < C; ++c) sum += line[iw * C + c];
        ps[iw] = sum;
      }
      for (int64_t ow = 0; ow < OW; ++ow)
        for (int64_t kw = 0; kw < K; ++kw) o[ow] += ps[ow * S + kw];
    }
  }
}

}  // namespace detail::ref

void conv_codes_with(const ConvCodesKernel& kernel, const uint8_t* x, int64_t images, const ConvCodesShape& s,
                     const ConvCodesWeights& w, const Epilogue& ep, void* out, int64_t ldo,
                     const ConvCodesFusion& fuse) {
  LOWBIT_CHECK(x != nullptr && out != nullptr && images >= 0, "conv_codes: null input or output");
  LOWBIT_CHECK(s.channels == w.in_channels, "conv_codes: input has ", s.channels, " channels, weights expect ",
               w.in_channels);
  LOWBIT_CHECK(s.stride >= 1 && s.out_height >= 1 && s.out_width >= 1 &&
                   (s.out_height - 1) * s.stride + w.kernel <= s.height &&
                   (s.out_width - 1) * s.stride + w.kernel <= s.width,
               "conv_codes: a ", s.out_height, "x", s.out_width, " output at stride ", s.stride, " needs a bordered input of at least ",
               (s.out_height - 1) * s.stride + w.kernel, "x", (s.out_width - 1) * s.stride + w.kernel, ", got ",
               s.height, "x", s.width);
  LOWBIT_CHECK(s.act_bits >= 1 && s.act_bits <= 8, "conv_codes: act_bits must be 1..8, got ", s.act_bits);
  LOWBIT_CHECK(ep.acc_mul == 1 && ep.rowsum_mul == 0, "conv_codes: the signed weights hold the correction; pass acc_mul 1, rowsum_mul 0");
  LOWBIT_CHECK(ldo >= w.out_channels, "conv_codes: output leading dimension ", ldo, " must be >= ", w.out_channels);
  if (ep.kind != EpilogueKind::int32) LOWBIT_CHECK(ep.scale != nullptr, "conv_codes: float/codes epilogue needs scale");
  if (ep.kind == EpilogueKind::codes)
    LOWBIT_CHECK(ep.max_code_out >= 1 && ep.max_code_out <= 255, "conv_codes: max_code_out must be in [1, 255], got ",
                 ep.max_code_out);
  const int64_t per_k = static_cast<int64_t>(max_code(s.act_bits)) * (w.split ? 2 * w.max_abs + 1 : std::max(1, w.max_abs));
  LOWBIT_CHECK(w.k <= std::numeric_limits<int32_t>::max() / per_k, "conv_codes: K = ", w.k,
               " could overflow the int32 accumulator");
  LOWBIT_CHECK(kernel.applies(w, s.act_bits), "conv_codes: the ", kernel.name, " kernel cannot hold ", s.act_bits,
               "-bit codes x weights up to ", w.max_abs, " exactly");
  LOWBIT_CHECK(ep.kind == EpilogueKind::float32 || !fuse.any(),
               "conv_codes: a residual add, ReLU or code output needs the float32 epilogue");
  LOWBIT_CHECK(fuse.code_outputs >= 0 && fuse.code_outputs <= ConvCodesFusion::kMaxCodes,
               "conv_codes: at most ", ConvCodesFusion::kMaxCodes, " code outputs, got ", fuse.code_outputs);
  if (images == 0) return;

  // Epilogue tables padded to whole blocks. The kernels' tasks read them while this thread waits
  // in parallel_for, where TBB may hand it another chunk of the caller's loop: so they belong to
  // this call, not to the thread.
  const size_t n_pad = static_cast<size_t>(w.n_blocks * kBlockChannels);
  std::vector<float> scale(n_pad, 0.f), bias(n_pad, 0.f);
  for (int64_t n = 0; n < w.out_channels; ++n) {
    if (ep.scale) scale[static_cast<size_t>(n)] = ep.scale[n];
    if (ep.bias) bias[static_cast<size_t>(n)] = ep.bias[n];
  }
  detail::ConvCodesProblem p;
  p.x = x;
  p.shape = s;
  p.w = &w;
  p.ep = ep;
  p.scale_pad = scale.data();
  p.bias_pad = bias.data();
  p.out = out;
  p.ldo = ldo;
  p.fuse = fuse;
  kernel.run(p, images);
}

void conv_codes_at(Isa isa, const uint8_t* x, int64_t images, const ConvCodesShape& s, const ConvCodesWeights& w,
                   const Epilogue& ep, void* out, int64_t ldo, const ConvCodesFusion& fuse) {
  LOWBIT_CHECK(isa_supported(isa), "conv_codes: ISA ", isa_name(isa), " is not supported by this CPU");
  const ConvCodesKernel* kernel = conv_codes_kernel(isa, w, s.act_bits);
  LOWBIT_CHECK(kernel != nullptr, "conv_codes: no ", isa_name(isa), " kernel holds ", s.act_bits,
               "-bit codes x weights up to ", w.max_abs, " exactly");
  conv_codes_with(*kernel, x, images, s, w, ep, out, ldo, fuse);
}

void conv_codes(const uint8_t* x, int64_t images, const ConvCodesShape& s, const ConvCodesWeights& w,
                const Epilogue& ep, void* out, int64_t ldo, const ConvCodesFusion& fuse) {
  conv_codes_at(active_isa_level(), x, images, s, w, ep, out, ldo, fuse);
}

}  // namespace lowbit::kernels
