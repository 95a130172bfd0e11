// int_model.cpp: the integer graph runtime: im2col on NHWC codes, packing, packed GEMM with the
// fused requantization epilogue, pooling on codes, float residual path.
#include "quant/export/int_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/threading.h"
#include "quant/kernels/gemm.h"

namespace lowbit::intq {

const char* op_kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::quantize: return "quantize";
    case OpKind::conv: return "conv";
    case OpKind::linear: return "linear";
    case OpKind::maxpool: return "maxpool";
    case OpKind::gap: return "gap";
    case OpKind::add: return "add";
    case OpKind::relu: return "relu";
    case OpKind::flatten: return "flatten";
  }
  return "?";
}

const char* value_type_name(ValueType type) { return type == ValueType::codes ? "codes" : "float32"; }

int pack_bits(int bits) { return bits <= 2 ? 2 : bits <= 4 ? 4 : 8; }

namespace {

// Round half to even, as the quantizers (std::nearbyint under the default rounding mode).
inline float rne(float v) { return std::nearbyint(v); }

// Buffers of one chunk of images: codes or floats per value.
struct ChunkBuffers {
  std::vector<std::vector<uint8_t>> codes;
  std::vector<std::vector<float>> floats;
};

void run_quantize(const IntOp& op, const float* x, int64_t count, uint8_t* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = quantize_value(op, x[i]);
}

// im2col of NHWC codes: row (img, oh, ow) holds, for kh, kw, c, the input code (pad = zero point).
void im2col_nhwc(const uint8_t* x, int64_t images, const ValueInfo& in, const IntOp& op, int64_t ho, int64_t wo,
                 uint8_t* col, int64_t ldc) {
  const int64_t C = in.c, H = in.h, W = in.w, K = op.kernel;
  const uint8_t pad = static_cast<uint8_t>(op.act_zero_point);
  for (int64_t img = 0; img < images; ++img) {
    const uint8_t* xi = x + img * H * W * C;
    for (int64_t oh = 0; oh < ho; ++oh)
      for (int64_t ow = 0; ow < wo; ++ow) {
        uint8_t* row = col + ((img * ho + oh) * wo + ow) * ldc;
        for (int64_t kh = 0; kh < K; ++kh) {
          const int64_t ih = oh * op.stride - op.padding + kh;
          for (int64_t kw = 0; kw < K; ++kw) {
            const int64_t iw = ow * op.stride - op.padding + kw;
            uint8_t* dst = row + (kh * K + kw) * C;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
              std::memset(dst, pad, static_cast<size_t>(C));
            else
              std::memcpy(dst, xi + (ih * W + iw) * C, static_cast<size_t>(C));
          }
        }
      }
  }
}

template <class T>
void maxpool_nhwc(const T* x, int64_t images, const ValueInfo& in, const ValueInfo& out, const IntOp& op, T* y) {
  const int64_t C = in.c, H = in.h, W = in.w;
  for (int64_t img = 0; img < images; ++img)
    for (int64_t oh = 0; oh < out.h; ++oh)
      for (int64_t ow = 0; ow < out.w; ++ow) {
        T* dst = y + ((img * out.h + oh) * out.w + ow) * C;
        bool first = true;
        for (int64_t kh = 0; kh < op.pool_kernel; ++kh) {
          const int64_t ih = oh * op.pool_stride - op.pool_padding + kh;
          if (ih < 0 || ih >= H) continue;
          for (int64_t kw = 0; kw < op.pool_kernel; ++kw) {
            const int64_t iw = ow * op.pool_stride - op.pool_padding + kw;
            if (iw < 0 || iw >= W) continue;  // padding never wins
            const T* src = x + ((img * H + ih) * W + iw) * C;
            if (first) {
              std::memcpy(dst, src, sizeof(T) * static_cast<size_t>(C));
              first = false;
            } else {
              for (int64_t c = 0; c < C; ++c) dst[c] = std::max(dst[c], src[c]);
            }
          }
        }
      }
}

void run_gemm_op(const IntOp& op, const ValueInfo& in, const ValueInfo& out, const uint8_t* x, int64_t images,
                 ChunkBuffers& buf) {
  const int64_t ho = out.h, wo = out.w;
  const int64_t M = images * ho * wo;
  const int64_t K = op.weights->k;
  const uint8_t* a = x;
  std::vector<uint8_t> col;
  const bool direct = op.kind == OpKind::linear || (op.kernel == 1 && op.stride == 1 && op.padding == 0);
  if (!direct) {
    col.resize(static_cast<size_t>(M * K));
    im2col_nhwc(x, images, in, op, ho, wo, col.data(), K);
    a = col.data();
  }
  const kernels::PackedActivations pa = kernels::pack_activations(a, M, K, K, pack_bits(op.act_bits));
  kernels::Epilogue ep;
  ep.kind = op.out_codes ? kernels::EpilogueKind::codes : kernels::EpilogueKind::float32;
  ep.acc_mul = op.acc_mul;
  ep.rowsum_mul = op.rowsum_mul;
  ep.scale = op.scale.data();
  ep.bias = op.bias.data();
  ep.max_code_out = op.out_max_code;
  if (op.out_codes) {
    auto& y = buf.codes[static_cast<size_t>(op.output)];
    y.resize(static_cast<size_t>(M * op.out_channels));
    kernels::gemm(pa, *op.weights, ep, y.data(), op.out_channels);
  } else {
    auto& y = buf.floats[static_cast<size_t>(op.output)];
    y.resize(static_cast<size_t>(M * op.out_channels));
    kernels::gemm(pa, *op.weights, ep, y.data(), op.out_channels);
  }
}

}  // namespace

uint8_t quantize_value(const IntOp& op, float x) {
  const float n = static_cast<float>((1 << op.bits) - 1);
  if (op.method == "pact") {
    const float a = op.p0, inv = n / a;
    return static_cast<uint8_t>(rne(std::min(std::max(x, 0.f), a) * inv));
  }
  if (op.method == "dorefa") return static_cast<uint8_t>(rne(n * std::min(std::max(x, 0.f), 1.f)));
  if (op.method == "qil") {
    const float inv_2d = 1.f / (2.f * op.p1);
    return static_cast<uint8_t>(rne(std::min(std::max((x - op.p0 + op.p1) * inv_2d, 0.f), 1.f) * n));
  }
  if (op.method == "lsq") return static_cast<uint8_t>(rne(std::min(std::max(x / op.p0, 0.f), n)));
  // input: signed symmetric, zero point q
  const int q = (1 << (op.bits - 1)) - 1;
  const float qf = static_cast<float>(q);
  return static_cast<uint8_t>(rne(std::min(std::max(x / op.p0, -qf), qf)) + static_cast<float>(q));
}

int64_t IntModel::parameter_bytes() const {
  int64_t bytes = 0;
  for (const auto& op : ops)
    if (op.kind == OpKind::conv || op.kind == OpKind::linear)
      bytes += static_cast<int64_t>(op.weights->blocks.size()) + 8 * op.out_channels;
  return bytes;
}

Tensor IntModel::run(const Tensor& images, const CodeTrace& trace) const {
  const ValueInfo& in = input_info();
  LOWBIT_CHECK(images.dim() == 4 && images.size(1) == in.c && images.size(2) == in.h && images.size(3) == in.w,
               "integer model: expected images [N, ", in.c, ", ", in.h, ", ", in.w, "], got ",
               to_string(images.shape()));
  const int64_t N = images.size(0);
  const int64_t classes = num_classes();
  Tensor logits = Tensor::empty({N, classes});
  if (N == 0) return logits;
  // Chunks of images run in parallel; the GEMMs inside parallelise further (nested TBB). A chunk
  // is big enough that each GEMM has thousands of rows.
  const int64_t pixels = std::max<int64_t>(1, in.h * in.w);
  const int64_t chunk = std::clamp<int64_t>(4096 / pixels, 1, 64);
  const int64_t chunks = (N + chunk - 1) / chunk;
  const float* src = images.data();
  float* dst = logits.data();
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t ci = c0; ci < c1; ++ci) {
      const int64_t i0 = ci * chunk, cnt = std::min(chunk, N - i0);
      ChunkBuffers buf;
      buf.codes.resize(values.size());
      buf.floats.resize(values.size());
      // NCHW -> NHWC
      auto& x = buf.floats[static_cast<size_t>(input)];
      x.resize(static_cast<size_t>(cnt * in.numel()));
      const int64_t hw = in.h * in.w;
      for (int64_t img = 0; img < cnt; ++img)
        for (int64_t c = 0; c < in.c; ++c)
          for (int64_t p = 0; p < hw; ++p)
            x[static_cast<size_t>((img * hw + p) * in.c + c)] = src[((i0 + img) * in.c + c) * hw + p];
      for (const IntOp& op : ops) {
        const ValueInfo& vo = values[static_cast<size_t>(op.output)];
        const ValueInfo& vi = values[static_cast<size_t>(op.inputs.at(0))];
        const size_t ii = static_cast<size_t>(op.inputs[0]), oi = static_cast<size_t>(op.output);
        const int64_t count = cnt * vo.numel();
        switch (op.kind) {
          case OpKind::quantize:
            buf.codes[oi].resize(static_cast<size_t>(count));
            run_quantize(op, buf.floats[ii].data(), count, buf.codes[oi].data());
            break;
          case OpKind::conv:
          case OpKind::linear:
            if (trace) trace(op, i0, cnt, buf.codes[ii].data());
            run_gemm_op(op, vi, vo, buf.codes[ii].data(), cnt, buf);
            break;
          case OpKind::maxpool:
            if (vi.type == ValueType::codes) {
              buf.codes[oi].resize(static_cast<size_t>(count));
              maxpool_nhwc(buf.codes[ii].data(), cnt, vi, vo, op, buf.codes[oi].data());
            } else {
              buf.floats[oi].resize(static_cast<size_t>(count));
              maxpool_nhwc(buf.floats[ii].data(), cnt, vi, vo, op, buf.floats[oi].data());
            }
            break;
          case OpKind::gap: {
            buf.floats[oi].assign(static_cast<size_t>(count), 0.f);
            const int64_t C = vi.c, P = vi.h * vi.w;
            const float* xi = buf.floats[ii].data();
            float* yo = buf.floats[oi].data();
            for (int64_t img = 0; img < cnt; ++img)
              for (int64_t c = 0; c < C; ++c) {
                // Same order as global_avg_pool2d: sum over H*W, then divide.
                float s = 0.f;
                for (int64_t p = 0; p < P; ++p) s += xi[(img * P + p) * C + c];
                yo[img * C + c] = s / static_cast<float>(P);
              }
            break;
          }
          case OpKind::add: {
            const auto& a = buf.floats[ii];
            const auto& b = buf.floats[static_cast<size_t>(op.inputs.at(1))];
            auto& y = buf.floats[oi];
            y.resize(static_cast<size_t>(count));
            for (int64_t i = 0; i < count; ++i) y[i] = a[i] + b[i];
            break;
          }
          case OpKind::relu: {
            const auto& a = buf.floats[ii];
            auto& y = buf.floats[oi];
            y.resize(static_cast<size_t>(count));
            for (int64_t i = 0; i < count; ++i) y[i] = std::max(a[i], 0.f);
            break;
          }
          case OpKind::flatten:
            // Same bytes, new shape: move the buffer (values are single-use after a flatten).
            if (vi.type == ValueType::codes) buf.codes[oi] = buf.codes[ii];
            else buf.floats[oi] = buf.floats[ii];
            break;
        }
      }
      const auto& y = buf.floats[static_cast<size_t>(output)];
      std::memcpy(dst + i0 * classes, y.data(), sizeof(float) * static_cast<size_t>(cnt * classes));
    }
  });
  return logits;
}

}  // namespace lowbit::intq
