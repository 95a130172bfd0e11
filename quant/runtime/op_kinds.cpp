// op_kinds.cpp: the table of op kinds (op_kinds.h) and, one section per kind, each kind's
// functions: write (its fields to the file's JSON), read (its fields from the JSON, validated, and
// its output's type and shape checked: the shape inference), run (on a chunk of images).
#include "quant/runtime/op_kinds.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <memory>

#include "quant/kernels/gemm.h"
#include "quant/runtime/act_code.h"
#include "quant/runtime/model_file.h"
#include "quant/runtime/op_context_internal.h"

namespace lowbit::intq {

namespace {

using json = nlohmann::json;
using Limits = ModelFileLimits;

// A kind with no fields beyond op, name, inputs and output.
void write_no_fields(const IntGraph&, const IntOp&, json&) {}

// ---------------------------------------------------------------- quantize: float -> codes

void write_quantize(const IntGraph&, const IntOp& op, json& j) {
  j["method"] = op.method;
  j["bits"] = op.bits;
  j["params"] = {float_json(op.p0), float_json(op.p1)};
}

// The method must be a registered activation method (quant/registry.h) whose rule accepts the
// parameters; the output's zero point is the rule's.
void read_quantize(OpReader& r, const json& j, const std::string& where, IntOp& op) {
  const ValueInfo& in = r.value(op.inputs[0]);
  const ValueInfo& out = r.value(op.output);
  op.method = get_string(r.cx, j, "method", where);
  op.bits = static_cast<int>(get_int(r.cx, j, "bits", 1, 8, where));
  const json& p = field(r.cx, j, "params", where);
  if (!p.is_array() || p.size() != 2) r.cx.fail(where, ".params must be [p0, p1]");
  op.p0 = get_float(r.cx, p[0], where + ".params[0]");
  op.p1 = get_float(r.cx, p[1], where + ".params[1]");
  r.expect_type(where, in, ValueType::float32, "input");
  r.expect_type(where, out, ValueType::codes, "output");
  const MethodCodes* method = find_method_codes(op.method);
  if (!method || !method->act_rule)
    r.cx.fail(where, " has unknown quantize method '", op.method, "' (known: ", act_method_names(), ")");
  const ActCodeSpec spec = act_spec(op);
  const std::string problem = method->act_rule->check(spec);
  if (!problem.empty()) r.cx.fail(where, " (", op.method, ") ", problem);
  const int32_t zp = method->act_rule->zero_point(spec);
  if (out.bits != op.bits || out.zero_point != zp)
    r.cx.fail(where, " output '", out.name, "' must have bits ", op.bits, " and zero point ", zp);
  r.expect_shape(where, out, in.c, in.h, in.w);
}

void run_quantize(ChunkRun& c, size_t k) {
  const IntOp& op = c.m.ops[k];
  const int64_t count = c.count * c.value(op.output).numel();
  quantize_values(op, c.floats[static_cast<size_t>(op.inputs[0])], count, c.codes_out(op.output, count), c.isa);
}

// ---------------------------------------------------------------- conv / linear: codes -> codes | float

void write_gemm(const IntGraph&, const IntOp& op, json& j) {
  j["in_channels"] = op.in_channels;
  j["out_channels"] = op.out_channels;
  j["kernel"] = op.kernel;
  j["stride"] = op.stride;
  j["padding"] = op.padding;
  j["weight_bits"] = op.weight_bits;
  j["act_bits"] = op.act_bits;
  j["act_zero_point"] = op.act_zero_point;
  j["weight_method"] = op.weight_method;
  j["weight_grid"] = op.weight_grid;
  j["weight_scale"] = float_json(op.weight_scale);
  j["acc_mul"] = op.acc_mul;
  j["rowsum_mul"] = op.rowsum_mul;
  j["epilogue"] = op.out_codes ? "codes" : "float";
  j["out_max_code"] = op.out_max_code;
}

// conv / linear fields; returns K after checking the geometry and the int32 guard.
int64_t gemm_geometry(OpReader& r, const std::string& where, IntOp& op) {
  const ValueInfo& in = r.value(op.inputs[0]);
  const ValueInfo& out = r.value(op.output);
  int64_t K = 0, ho = 1, wo = 1;
  if (op.kind == OpKind::linear) {
    if (op.kernel != 1 || op.stride != 1 || op.padding != 0) r.cx.fail(where, " linear needs kernel 1, stride 1, padding 0");
    if (op.in_channels != in.numel()) r.cx.fail(where, " in_channels ", op.in_channels, " != input size ", in.numel());
    K = op.in_channels;
  } else {
    if (op.in_channels != in.c) r.cx.fail(where, " in_channels ", op.in_channels, " != input channels ", in.c);
    if (in.h + 2 * op.padding < op.kernel || in.w + 2 * op.padding < op.kernel)
      r.cx.fail(where, " kernel ", op.kernel, " does not fit the ", in.h, "x", in.w, " input");
    ho = (in.h + 2 * op.padding - op.kernel) / op.stride + 1;
    wo = (in.w + 2 * op.padding - op.kernel) / op.stride + 1;
    K = op.in_channels * op.kernel * op.kernel;
    if (K > Limits::value_elements || ho * wo * K > Limits::im2col_bytes)
      r.cx.fail(where, " K = ", K, " x ", ho * wo, " output pixels is above the im2col limit ", Limits::im2col_bytes);
  }
  r.expect_shape(where, out, op.out_channels, ho, wo);
  const int64_t k_pad = (K + kernels::kPadK - 1) / kernels::kPadK * kernels::kPadK;
  const int64_t limit = kernels::gemm_k_limit(pack_bits(op.weight_bits), pack_bits(op.act_bits), op.acc_mul, op.rowsum_mul);
  if (k_pad > limit) r.cx.fail(where, " K = ", K, " could overflow the int32 accumulator (limit ", limit, ")");
  return K;
}

// Weights: unpack the dense rows (codes within weight_bits, zero tail bits), then pack them into
// the kernels' blocks. The codes buffer is at most 4x the tensor's bytes, which lie inside the
// file, so a hostile shape cannot cause a huge allocation. Epilogue: finite scale and bias.
void gemm_tensors(OpReader& r, const std::string& where, IntOp& op, int64_t K) {
  const int wpb = pack_bits(op.weight_bits);
  const int64_t row_bytes = dense_row_bytes(K, wpb), per_byte = kernels::codes_per_byte(wpb);
  TensorEntry& tw = r.op_tensor(where, op, "weight", "U8", {op.out_channels, row_bytes});
  TensorEntry& te = r.op_tensor(where, op, "epilogue", "F32", {2, op.out_channels});
  const auto* rows = reinterpret_cast<const uint8_t*>(r.file.data + tw.begin);
  std::vector<uint8_t> codes(static_cast<size_t>(op.out_channels * K));
  const int wmax = (1 << op.weight_bits) - 1;
  for (int64_t n = 0; n < op.out_channels; ++n) {
    const uint8_t* row = rows + n * row_bytes;
    for (int64_t k = 0; k < K; ++k) {
      const int code = (row[k / per_byte] >> (wpb * (k % per_byte))) & kernels::max_code(wpb);
      if (code > wmax)
        r.cx.fail("tensor '", op.name, ".weight' has code ", code, " above the ", op.weight_bits,
                 "-bit maximum (channel ", n, ", k ", k, ")");
      codes[static_cast<size_t>(n * K + k)] = static_cast<uint8_t>(code);
    }
    if (K % per_byte != 0 && (row[row_bytes - 1] >> (wpb * (K % per_byte))) != 0)
      r.cx.fail("tensor '", op.name, ".weight' has non-zero bits after the last code of channel ", n);
  }
  op.weights = std::make_shared<kernels::PackedWeights>(kernels::pack_weights(codes.data(), op.out_channels, K, K, wpb));
  op.scale.resize(static_cast<size_t>(op.out_channels));
  op.bias.resize(static_cast<size_t>(op.out_channels));
  std::memcpy(op.scale.data(), r.file.data + te.begin, op.scale.size() * sizeof(float));
  std::memcpy(op.bias.data(), r.file.data + te.begin + op.scale.size() * sizeof(float), op.bias.size() * sizeof(float));
  for (size_t c = 0; c < op.scale.size(); ++c)
    if (!std::isfinite(op.scale[c]) || !std::isfinite(op.bias[c]))
      r.cx.fail("tensor '", op.name, ".epilogue' has a non-finite scale or bias at channel ", c);
}

void read_gemm(OpReader& r, const json& j, const std::string& where, IntOp& op) {
  const ValueInfo& in = r.value(op.inputs[0]);
  const ValueInfo& out = r.value(op.output);
  r.expect_type(where, in, ValueType::codes, "input");
  op.in_channels = get_int(r.cx, j, "in_channels", 1, Limits::value_elements, where);
  op.out_channels = get_int(r.cx, j, "out_channels", 1, Limits::channels, where);
  op.kernel = get_int(r.cx, j, "kernel", 1, Limits::kernel, where);
  op.stride = get_int(r.cx, j, "stride", 1, Limits::stride, where);
  op.padding = get_int(r.cx, j, "padding", 0, op.kernel - 1, where);
  op.weight_bits = static_cast<int>(get_int(r.cx, j, "weight_bits", 1, 8, where));
  op.act_bits = static_cast<int>(get_int(r.cx, j, "act_bits", 1, 8, where));
  op.act_zero_point = static_cast<int32_t>(get_int(r.cx, j, "act_zero_point", 0, 255, where));
  op.acc_mul = static_cast<int32_t>(get_int(r.cx, j, "acc_mul", 1, 2, where));
  op.rowsum_mul = static_cast<int32_t>(get_int(r.cx, j, "rowsum_mul", -255, 0, where));
  op.weight_method = j.contains("weight_method") && j["weight_method"].is_string() ? j["weight_method"].get<std::string>() : "";
  op.weight_grid = j.contains("weight_grid") && j["weight_grid"].is_string() ? j["weight_grid"].get<std::string>() : "";
  if (!op.weight_method.empty()) {
    const MethodCodes* wm = find_method_codes(op.weight_method);
    if (!wm || !wm->weights)
      r.cx.fail(where, " has unknown weight_method '", op.weight_method, "' (known: ", weight_method_names(), ")");
  }
  if (j.contains("weight_scale")) op.weight_scale = get_float(r.cx, j["weight_scale"], where + ".weight_scale");
  const std::string epi = get_string(r.cx, j, "epilogue", where);
  if (epi != "codes" && epi != "float") r.cx.fail(where, ".epilogue must be codes or float, got '", epi, "'");
  op.out_codes = epi == "codes";
  if (op.act_bits != in.bits || op.act_zero_point != in.zero_point)
    r.cx.fail(where, " act_bits/act_zero_point (", op.act_bits, "/", op.act_zero_point, ") disagree with input '",
             in.name, "' (", in.bits, "/", in.zero_point, ")");
  const int64_t K = gemm_geometry(r, where, op);
  if (op.out_codes) {
    r.expect_type(where, out, ValueType::codes, "output");
    op.out_max_code = static_cast<int>(get_int(r.cx, j, "out_max_code", 1, 255, where));
    if (out.zero_point != 0 || op.out_max_code != (1 << out.bits) - 1)
      r.cx.fail(where, " out_max_code ", op.out_max_code, " must be 2^bits - 1 of output '", out.name,
               "' (zero point 0)");
  } else {
    r.expect_type(where, out, ValueType::float32, "output");
  }
  gemm_tensors(r, where, op, K);
}

void run_gemm(ChunkRun& c, size_t k) {
  const IntOp& op = c.m.ops[k];
  const size_t ii = static_cast<size_t>(op.inputs[0]);
  const int64_t count = c.count * c.value(op.output).numel();
  if (c.trace) c.codes[ii] = c.trace(op, c.i0, c.count, c.codes[ii]);
  void* y = op.out_codes ? static_cast<void*>(c.codes_out(op.output, count))
                         : static_cast<void*>(c.float_out(op.output, count));
  c.gemm(k, c.codes[ii], y);
}

// ---------------------------------------------------------------- maxpool: codes or float

void write_maxpool(const IntGraph&, const IntOp& op, json& j) {
  j["kernel"] = op.pool_kernel;
  j["stride"] = op.pool_stride;
  j["padding"] = op.pool_padding;
}

void read_maxpool(OpReader& r, const json& j, const std::string& where, IntOp& op) {
  const ValueInfo& in = r.value(op.inputs[0]);
  const ValueInfo& out = r.value(op.output);
  op.pool_kernel = get_int(r.cx, j, "kernel", 1, Limits::kernel, where);
  op.pool_stride = get_int(r.cx, j, "stride", 1, Limits::stride, where);
  op.pool_padding = get_int(r.cx, j, "padding", 0, op.pool_kernel / 2, where);
  if (in.h + 2 * op.pool_padding < op.pool_kernel || in.w + 2 * op.pool_padding < op.pool_kernel)
    r.cx.fail(where, " kernel does not fit the input");
  if (in.type == ValueType::codes &&
      (out.type != ValueType::codes || out.bits != in.bits || out.zero_point != in.zero_point))
    r.cx.fail(where, " output must have the input's type, bits and zero point");
  r.expect_type(where, out, in.type, "output");
  r.expect_shape(where, out, in.c, (in.h + 2 * op.pool_padding - op.pool_kernel) / op.pool_stride + 1,
               (in.w + 2 * op.pool_padding - op.pool_kernel) / op.pool_stride + 1);
}

// Max pooling, any geometry: padding never wins.
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
            if (iw < 0 || iw >= W) continue;
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

// Max pooling when every window lies inside the input (no bounds checks). KP: the pool size when known at compile time (0 = op.pool_kernel): the window loops unroll
// inside the channel loop, which then vectorises (one load per tap, one store per channel).
template <int KP, class T>
void maxpool_valid_nhwc(const T* x, int64_t images, const ValueInfo& in, const ValueInfo& out, const IntOp& op, T* y) {
  const int64_t C = in.c, H = in.h, W = in.w, S = op.pool_stride, K = KP > 0 ? KP : op.pool_kernel;
  const int64_t oh_n = out.h, ow_n = out.w;
  for (int64_t img = 0; img < images; ++img)
    for (int64_t oh = 0; oh < oh_n; ++oh)
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        T* __restrict dst = y + ((img * oh_n + oh) * ow_n + ow) * C;
        const T* __restrict base = x + ((img * H + oh * S) * W + ow * S) * C;
        for (int64_t c = 0; c < C; ++c) {
          T m = base[c];
          for (int64_t kh = 0; kh < K; ++kh)
            for (int64_t kw = 0; kw < K; ++kw) m = std::max(m, base[(kh * W + kw) * C + c]);
          dst[c] = m;
        }
      }
}

bool pool_windows_inside(const ValueInfo& in, const ValueInfo& out, const IntOp& op) {
  return op.pool_padding == 0 && (out.h - 1) * op.pool_stride + op.pool_kernel <= in.h &&
         (out.w - 1) * op.pool_stride + op.pool_kernel <= in.w;
}

template <class T>
void maxpool_any(const T* x, int64_t images, const ValueInfo& in, const ValueInfo& out, const IntOp& op, T* y) {
  if (!pool_windows_inside(in, out, op))
    maxpool_nhwc(x, images, in, out, op, y);
  else if (op.pool_kernel == 2)
    maxpool_valid_nhwc<2>(x, images, in, out, op, y);
  else
    maxpool_valid_nhwc<0>(x, images, in, out, op, y);
}
void run_maxpool(ChunkRun& c, size_t k) {
  const IntOp& op = c.m.ops[k];
  const ValueInfo& vi = c.value(op.inputs[0]);
  const ValueInfo& vo = c.value(op.output);
  const size_t ii = static_cast<size_t>(op.inputs[0]);
  const int64_t count = c.count * vo.numel();
  if (vi.type == ValueType::codes)
    maxpool_any(c.codes[ii], c.count, vi, vo, op, c.codes_out(op.output, count));
  else
    maxpool_any(c.floats[ii], c.count, vi, vo, op, c.float_out(op.output, count));
}

// ---------------------------------------------------------------- gap: float -> float [C, 1, 1]

void read_gap(OpReader& r, const json&, const std::string& where, IntOp& op) {
  const ValueInfo& in = r.value(op.inputs[0]);
  const ValueInfo& out = r.value(op.output);
  r.expect_type(where, in, ValueType::float32, "input");
  r.expect_type(where, out, ValueType::float32, "output");
  r.expect_shape(where, out, in.c, 1, 1);
}

void run_gap(ChunkRun& c, size_t k) {
  const IntOp& op = c.m.ops[k];
  const ValueInfo& vi = c.value(op.inputs[0]);
  const float* xi = c.floats[static_cast<size_t>(op.inputs[0])];
  float* yo = c.float_out(op.output, c.count * c.value(op.output).numel());
  const int64_t C = vi.c, P = vi.h * vi.w;
  for (int64_t img = 0; img < c.count; ++img)
    for (int64_t ch = 0; ch < C; ++ch) {
      // Same order as global_avg_pool2d: sum over H*W, then divide.
      float s = 0.f;
      for (int64_t p = 0; p < P; ++p) s += xi[(img * P + p) * C + ch];
      yo[img * C + ch] = s / static_cast<float>(P);
    }
}

// ---------------------------------------------------------------- add: float + float

void read_add(OpReader& r, const json&, const std::string& where, IntOp& op) {
  const ValueInfo& in = r.value(op.inputs[0]);
  const ValueInfo& out = r.value(op.output);
  const ValueInfo& b = r.value(op.inputs[1]);
  r.expect_type(where, in, ValueType::float32, "input");
  r.expect_type(where, b, ValueType::float32, "input");
  r.expect_type(where, out, ValueType::float32, "output");
  if (b.c != in.c || b.h != in.h || b.w != in.w) r.cx.fail(where, " adds values of different shapes");
  r.expect_shape(where, out, in.c, in.h, in.w);
}

void run_add(ChunkRun& c, size_t k) {
  const IntOp& op = c.m.ops[k];
  const int64_t count = c.count * c.value(op.output).numel();
  const float* a = c.floats[static_cast<size_t>(op.inputs[0])];
  const float* b = c.floats[static_cast<size_t>(op.inputs[1])];
  float* y = c.float_out(op.output, count);
  for (int64_t i = 0; i < count; ++i) y[i] = a[i] + b[i];
}

// ---------------------------------------------------------------- relu: float -> float

void read_relu(OpReader& r, const json&, const std::string& where, IntOp& op) {
  const ValueInfo& in = r.value(op.inputs[0]);
  const ValueInfo& out = r.value(op.output);
  r.expect_type(where, in, ValueType::float32, "input");
  r.expect_type(where, out, ValueType::float32, "output");
  r.expect_shape(where, out, in.c, in.h, in.w);
}

void run_relu(ChunkRun& c, size_t k) {
  const IntOp& op = c.m.ops[k];
  const int64_t count = c.count * c.value(op.output).numel();
  const float* a = c.floats[static_cast<size_t>(op.inputs[0])];
  float* y = c.float_out(op.output, count);
  for (int64_t i = 0; i < count; ++i) y[i] = std::max(a[i], 0.f);
}

// ---------------------------------------------------------------- flatten: [C, H, W] -> [C*H*W, 1, 1]

void read_flatten(OpReader& r, const json&, const std::string& where, IntOp& op) {
  const ValueInfo& in = r.value(op.inputs[0]);
  const ValueInfo& out = r.value(op.output);
  r.expect_type(where, out, in.type, "output");
  if (in.type == ValueType::codes && (out.bits != in.bits || out.zero_point != in.zero_point))
    r.cx.fail(where, " output must keep the input's bits and zero point");
  r.expect_shape(where, out, in.numel(), 1, 1);
}

// Same bytes, new shape: an alias, except that the model output is copied into the logits.
void run_flatten(ChunkRun& c, size_t k) {
  const IntOp& op = c.m.ops[k];
  const size_t ii = static_cast<size_t>(op.inputs[0]), oi = static_cast<size_t>(op.output);
  if (c.value(op.inputs[0]).type == ValueType::codes) {
    c.codes[oi] = c.codes[ii];
  } else if (op.output == c.m.output) {
    std::memcpy(c.logits, c.floats[ii], sizeof(float) * static_cast<size_t>(c.count * c.value(op.output).numel()));
    c.floats[oi] = c.logits;
  } else {
    c.floats[oi] = c.floats[ii];
  }
}

}  // namespace

// ---------------------------------------------------------------- the table

constexpr OpKindInfo kOpKinds[] = {
    {OpKind::quantize, "quantize", 1, false, write_quantize, read_quantize, run_quantize},
    {OpKind::conv, "conv", 1, true, write_gemm, read_gemm, run_gemm},
    {OpKind::linear, "linear", 1, true, write_gemm, read_gemm, run_gemm},
    {OpKind::maxpool, "maxpool", 1, false, write_maxpool, read_maxpool, run_maxpool},
    {OpKind::gap, "gap", 1, false, write_no_fields, read_gap, run_gap},
    {OpKind::add, "add", 2, false, write_no_fields, read_add, run_add},
    {OpKind::relu, "relu", 1, false, write_no_fields, read_relu, run_relu},
    {OpKind::flatten, "flatten", 1, false, write_no_fields, read_flatten, run_flatten},
};

namespace {
constexpr bool rows_in_enum_order() {
  for (size_t i = 0; i < std::size(kOpKinds); ++i)
    if (static_cast<size_t>(kOpKinds[i].kind) != i) return false;
  return true;
}
static_assert(rows_in_enum_order(), "kOpKinds: one row per OpKind, in enum order");
// OpKind::flatten: the enum's last kind (a kind added at the end takes its place here).
static_assert(std::size(kOpKinds) == static_cast<size_t>(OpKind::flatten) + 1, "kOpKinds: a row per OpKind");
}  // namespace

const OpKindInfo* find_op_kind(const std::string& name) {
  for (const OpKindInfo& k : kOpKinds)
    if (name == k.name) return &k;
  return nullptr;
}

std::string op_kind_names() {
  std::string out;
  for (const OpKindInfo& k : kOpKinds) out += (out.empty() ? "" : ", ") + std::string(k.name);
  return out;
}

}  // namespace lowbit::intq
