// int_graph.cpp: the integer graph runtime: chunks of images on pooled workspaces (so serving
// allocates nothing once warm), each op run by its kind's row (op_kinds.cpp) on a ChunkRun
// (op_context_internal.h); the conv / linear path: packed im2col on NHWC codes (im2col_packed.h) or
// conv_codes, packed GEMM with the fused requantization epilogue, the fused conv-add-relu chain.
#include "quant/runtime/int_graph.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/runtime/im2col_packed.h"
#include "quant/kernels/gemm.h"
#include "quant/kernels/quantize_codes.h"
#include "quant/runtime/op_context_internal.h"

namespace lowbit::intq {

const char* value_type_name(ValueType type) { return type == ValueType::codes ? "codes" : "float32"; }

int pack_bits(int bits) { return bits <= 2 ? 2 : bits <= 4 ? 4 : 8; }

namespace {

// The conv_codes geometry of a conv op: its input bordered by `padding` pixels, channels padded
// to the weights' multiple of 4.
kernels::ConvCodesShape conv_codes_shape(const IntOp& op, const ValueInfo& in, const ValueInfo& out) {
  kernels::ConvCodesShape s;
  s.channels = op.conv_weights->in_channels;
  s.height = in.h + 2 * op.padding;
  s.width = in.w + 2 * op.padding;
  s.stride = op.stride;
  s.out_height = out.h;
  s.out_width = out.w;
  s.act_bits = pack_bits(op.act_bits);
  return s;
}

}  // namespace

int64_t chunk_images(const ValueInfo& model_input) {
  return std::clamp<int64_t>(4096 / std::max<int64_t>(1, model_input.h * model_input.w), 1, 64);
}

void prepare_runtime(IntOp& op, const ValueInfo& in, const ValueInfo& out, int64_t chunk_images, kernels::Isa isa) {
  op.conv_weights.reset();
  op.conv_kernel = nullptr;
  if (op.kind != OpKind::conv || !op.weights || !kernels::conv_codes_fits(*op.weights, op.acc_mul, op.rowsum_mul, op.in_channels))
    return;
  op.conv_weights = std::make_shared<kernels::ConvCodesWeights>(
      kernels::pack_conv_codes_weights(*op.weights, op.acc_mul, op.rowsum_mul, op.in_channels, op.kernel, op.act_bits));
  op.conv_kernel_isa = isa;
  if (op.conv_kernel_isa != kernels::Isa::scalar)
    op.conv_kernel = kernels::fastest_conv_codes_kernel(op.conv_kernel_isa, conv_codes_shape(op, in, out),
                                                        *op.conv_weights,
                                                        op.out_codes ? kernels::EpilogueKind::codes : kernels::EpilogueKind::float32,
                                                        chunk_images);
  kernels::drop_unused_pair_tables(*op.conv_weights, op.conv_kernel);
}

// Working memory of one task of run(): per value a buffer (codes or floats) and per op a packed
// activation matrix. Buffers only grow, and workspaces are pooled across calls, so a steady
// stream of batches allocates nothing.
struct Workspace {
  std::vector<std::vector<uint8_t>> codes;
  std::vector<std::vector<float>> floats;
  std::vector<kernels::PackedActivations> packed;
  Im2colScratch im2col;
  std::vector<uint8_t> bordered;  // conv_codes input: the codes with a zero-point border
  // Where each value of the current chunk lives (a workspace buffer, the input, or an alias).
  std::vector<const uint8_t*> code_ptrs;
  std::vector<const float*> float_ptrs;
};

// A pool rather than thread_local: a thread blocked in a nested parallel GEMM may pick up
// another chunk of the same run_graph(), which must not share its workspace.
struct WorkspacePool::Impl {
  std::unique_ptr<Workspace> acquire() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return std::make_unique<Workspace>();
    auto w = std::move(free_.back());
    free_.pop_back();
    return w;
  }
  void release(std::unique_ptr<Workspace> w) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(w));
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Workspace>> free_;
};

WorkspacePool::WorkspacePool() : impl(std::make_unique<Impl>()) {}
WorkspacePool::~WorkspacePool() = default;

namespace {

template <class T>
T* grow(std::vector<T>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace

ActCodeSpec act_spec(const IntOp& op) { return {op.method, op.bits, op.p0, op.p1}; }

// The method's rule (quant/runtime/act_code.h); unknown methods throw.
// (the SIMD loops of quant/kernels/quantize_codes.h when the rule is one of their expressions).
void quantize_values(const IntOp& op, const float* x, int64_t count, uint8_t* out, kernels::Isa isa) {
  const ActCodeRule& rule = act_code_rule(op.method);
  if (const auto map = rule.code_map(act_spec(op)))
    kernels::quantize_codes_at(isa, *map, x, count, out);
  else
    rule.quantize_many(act_spec(op), x, count, out);
}

uint8_t quantize_value(const IntOp& op, float x) { return act_code_rule(op.method).quantize(act_spec(op), x); }

namespace {

kernels::Epilogue epilogue_of(const IntOp& op) {
  kernels::Epilogue ep;
  ep.kind = op.out_codes ? kernels::EpilogueKind::codes : kernels::EpilogueKind::float32;
  ep.acc_mul = op.acc_mul;
  ep.rowsum_mul = op.rowsum_mul;
  ep.scale = op.scale.data();
  ep.bias = op.bias.data();
  ep.max_code_out = op.out_max_code;
  return ep;
}

// conv_codes when the op has signed byte weights and the active kernels hold its codes exactly:
// the input is copied once into an image bordered by `padding` pixels of the zero-point code.
bool runs_as_conv_codes(const IntOp& op, kernels::Isa isa) {
  return op.conv_weights && isa != kernels::Isa::scalar &&
         kernels::conv_codes_supported(isa, *op.conv_weights, pack_bits(op.act_bits));
}

}  // namespace

std::string op_kernel(const IntOp& op, kernels::Isa isa) {
  if (op.kind != OpKind::conv && op.kind != OpKind::linear) return "";
  if (runs_as_conv_codes(op, isa))
    return op.conv_kernel && op.conv_kernel_isa == isa ? op.conv_kernel->name
                                                       : kernels::conv_codes_kernel(isa, *op.conv_weights, pack_bits(op.act_bits))->name;
  return std::string(kernels::isa_name(isa)) + ".gemm";
}

namespace {

bool run_conv_codes(const IntOp& op, kernels::Isa isa, const ValueInfo& in, const ValueInfo& out, const uint8_t* x,
                    int64_t images, Workspace& ws, void* y, const kernels::ConvCodesFusion& fuse = {}) {
  if (!runs_as_conv_codes(op, isa)) return false;
  // The bordered image: `padding` pixels of the zero-point code around each image, and channels
  // padded to the weights' multiple of 4 with code 0 (their weights are zero).
  const int64_t C = in.c, C4 = op.conv_weights->in_channels, P = op.padding, hp = in.h + 2 * P, wp = in.w + 2 * P;
  const uint8_t* src = x;
  if (P > 0 || C4 != C) {
    uint8_t* b = grow(ws.bordered, images * hp * wp * C4);
    if (C4 == C) {
      std::memset(b, op.act_zero_point, static_cast<size_t>(images * hp * wp * C));
      for (int64_t img = 0; img < images; ++img)
        for (int64_t ih = 0; ih < in.h; ++ih)
          std::memcpy(b + ((img * hp + ih + P) * wp + P) * C, x + (img * in.h + ih) * in.w * C,
                      static_cast<size_t>(in.w * C));
    } else {
      // Byte loops, not memcpy/memset calls: a first layer has one to three channels per pixel.
      const uint8_t zp = static_cast<uint8_t>(op.act_zero_point);
      for (int64_t img = 0; img < images; ++img)
        for (int64_t ih = 0; ih < hp; ++ih) {
          uint8_t* dst = b + (img * hp + ih) * wp * C4;
          const bool row_inside = ih >= P && ih < P + in.h;
          const uint8_t* src = row_inside ? x + (img * in.h + ih - P) * in.w * C : nullptr;
          for (int64_t iw = 0; iw < wp; ++iw, dst += C4) {
            const bool inside = row_inside && iw >= P && iw < P + in.w;
            for (int64_t c = 0; c < C4; ++c) dst[c] = c >= C ? 0 : inside ? src[(iw - P) * C + c] : zp;
          }
        }
    }
    src = b;
  }
  const kernels::ConvCodesShape s = conv_codes_shape(op, in, out);
  kernels::Epilogue ep = epilogue_of(op);
  ep.acc_mul = 1;  // the signed weights hold the correction
  ep.rowsum_mul = 0;
  if (op.conv_kernel && op.conv_kernel_isa == isa)
    kernels::conv_codes_with(*op.conv_kernel, src, images, s, *op.conv_weights, ep, y, op.out_channels, fuse);
  else
    kernels::conv_codes_at(isa, src, images, s, *op.conv_weights, ep, y, op.out_channels, fuse);
  return true;
}

// conv / linear: conv_codes, or packed im2col (or the codes themselves for linear and 1x1
// stride-1 convs) then the GEMM with its fused epilogue into `out` (uint8_t codes or float).
void run_gemm_op(const IntOp& op, kernels::Isa isa, const ValueInfo& in, const ValueInfo& out, const uint8_t* x,
                 int64_t images, Workspace& ws, kernels::PackedActivations& pa, void* y) {
  if (run_conv_codes(op, isa, in, out, x, images, ws, y)) return;
  const int bits = pack_bits(op.act_bits);
  const int64_t K = op.weights->k;
  if (op.kind == OpKind::linear || (op.kernel == 1 && op.stride == 1 && op.padding == 0)) {
    pack_rows(x, images * out.h * out.w, K, K, bits, pa);
  } else {
    ConvGeometry g;
    g.channels = in.c;
    g.height = in.h;
    g.width = in.w;
    g.kernel = op.kernel;
    g.stride = op.stride;
    g.padding = op.padding;
    g.out_height = out.h;
    g.out_width = out.w;
    g.bits = bits;
    g.pad_code = static_cast<uint8_t>(op.act_zero_point);
    im2col_packed(x, images, g, ws.im2col, pa);
  }
  kernels::gemm_at(isa, pa, *op.weights, epilogue_of(op), y, op.out_channels);
}

}  // namespace

int64_t stored_bytes(const IntOp& op) {
  const int64_t per_byte = kernels::codes_per_byte(op.weights->bits);
  return op.out_channels * ((op.weights->k + per_byte - 1) / per_byte) + 8 * op.out_channels;
}

int64_t IntGraph::parameter_bytes() const {
  int64_t bytes = 0;
  for (const auto& op : ops)
    if (op_kind_info(op.kind).weights) bytes += stored_bytes(op);
  return bytes;
}

ChunkRun::ChunkRun(const IntGraph& m, kernels::Isa isa, Workspace& ws, const CodeTrace& trace, int64_t i0,
                   int64_t count, float* logits)
    : m(m), isa(isa), ws(ws), trace(trace), i0(i0), count(count), logits(logits), codes(ws.code_ptrs),
      floats(ws.float_ptrs) {}

float* ChunkRun::float_out(int v, int64_t n) {
  float* y = v == m.output ? logits : grow(ws.floats[static_cast<size_t>(v)], n);
  floats[static_cast<size_t>(v)] = y;
  return y;
}

uint8_t* ChunkRun::codes_out(int v, int64_t n) {
  uint8_t* y = grow(ws.codes[static_cast<size_t>(v)], n);
  codes[static_cast<size_t>(v)] = y;
  return y;
}

void ChunkRun::gemm(size_t k, const uint8_t* x, void* y) {
  const IntOp& op = m.ops[k];
  run_gemm_op(op, isa, value(op.inputs[0]), value(op.output), x, count, ws, ws.packed[k], y);
}

namespace {

// How run() executes the graph (computed per call from the ops; cheap next to any batch).
// A conv -> add -> relu chain (ops k, k+1, k+2) whose conv runs as conv_codes with a float
// output only the add reads, and whose sum only the relu reads, runs as one conv_codes call
// that adds and rectifies in its epilogue; quantize ops on the relu's output whose rule has a
// SIMD form (at most ConvCodesFusion::kMaxCodes) are computed in that epilogue too.
struct RunPlan {
  std::vector<bool> fused;                  // per op: the head of a fused chain
  std::vector<std::vector<size_t>> folded;  // per fused head: the quantize ops it computes
  std::vector<bool> done_early;             // per op: a quantize op computed by a fused chain
};

RunPlan plan_run(const IntGraph& m, kernels::Isa isa) {
  std::vector<int> readers(m.values.size(), 0);
  for (const IntOp& op : m.ops)
    for (int v : op.inputs) ++readers[static_cast<size_t>(v)];
  ++readers[static_cast<size_t>(m.output)];
  RunPlan plan;
  plan.fused.assign(m.ops.size(), false);
  plan.folded.resize(m.ops.size());
  plan.done_early.assign(m.ops.size(), false);
  for (size_t k = 0; k + 2 < m.ops.size(); ++k) {
    const IntOp &conv = m.ops[k], &add = m.ops[k + 1], &relu = m.ops[k + 2];
    const bool pattern = conv.kind == OpKind::conv && !conv.out_codes && add.kind == OpKind::add &&
                         add.inputs.size() == 2 && (add.inputs[0] == conv.output) != (add.inputs[1] == conv.output) &&
                         relu.kind == OpKind::relu && relu.inputs.at(0) == add.output;
    if (!pattern || readers[static_cast<size_t>(conv.output)] != 1 || readers[static_cast<size_t>(add.output)] != 1 ||
        !runs_as_conv_codes(conv, isa))
      continue;
    plan.fused[k] = true;
    for (size_t j = k + 3; j < m.ops.size(); ++j) {
      const IntOp& q = m.ops[j];
      if (q.kind == OpKind::quantize && q.inputs.at(0) == relu.output && act_code_rule(q.method).code_map(act_spec(q)) &&
          plan.folded[k].size() < static_cast<size_t>(kernels::ConvCodesFusion::kMaxCodes)) {
        plan.folded[k].push_back(j);
        plan.done_early[j] = true;
      }
    }
  }
  return plan;
}

// NCHW -> NHWC (the same memory for one channel).
void load_input(ChunkRun& c, const float* src) {
  const ValueInfo& in = c.m.input_info();
  const int64_t hw = in.h * in.w;
  const size_t v = static_cast<size_t>(c.m.input);
  if (in.c == 1) {
    c.floats[v] = src + c.i0 * hw;
    return;
  }
  float* x = grow(c.ws.floats[v], c.count * in.numel());
  for (int64_t img = 0; img < c.count; ++img)
    for (int64_t ch = 0; ch < in.c; ++ch)
      for (int64_t p = 0; p < hw; ++p) x[(img * hw + p) * in.c + ch] = src[((c.i0 + img) * in.c + ch) * hw + p];
  c.floats[v] = x;
}

// ops k, k+1, k+2 = conv (float out), add of its output and another value, relu: one
// conv_codes call whose epilogue adds the other value and applies the ReLU.
void run_conv_add_relu(ChunkRun& c, const RunPlan& plan, size_t k) {
  const IntOp& conv = c.m.ops[k];
  const IntOp& add = c.m.ops[k + 1];
  const IntOp& relu = c.m.ops[k + 2];
  const size_t ii = static_cast<size_t>(conv.inputs[0]);
  const int other = add.inputs[0] == conv.output ? add.inputs[1] : add.inputs[0];
  const ValueInfo& vo = c.value(relu.output);
  if (c.trace) c.codes[ii] = c.trace(conv, c.i0, c.count, c.codes[ii]);
  kernels::ConvCodesFusion fuse;
  fuse.residual = c.floats[static_cast<size_t>(other)];
  fuse.relu = true;
  for (size_t j : plan.folded[k]) {
    const IntOp& q = c.m.ops[j];
    auto& code = fuse.codes[fuse.code_outputs++];
    code.map = *act_code_rule(q.method).code_map(act_spec(q));
    code.out = c.codes_out(q.output, c.count * vo.numel());
  }
  float* y = c.float_out(relu.output, c.count * vo.numel());
  run_conv_codes(conv, c.isa, c.m.values[ii], c.value(conv.output), c.codes[ii], c.count, c.ws, y, fuse);
}

// The chunk through every op (images: the whole batch, NCHW), the model output into the logits.
void run_chunk(ChunkRun& c, const RunPlan& plan, const float* images) {
  load_input(c, images);
  for (size_t k = 0; k < c.m.ops.size(); ++k) {
    if (plan.fused[k]) {
      run_conv_add_relu(c, plan, k);
      k += 2;
    } else if (!plan.done_early[k]) {
      op_kind_info(c.m.ops[k].kind).run(c, k);
    }
  }
  const float* y = c.floats[static_cast<size_t>(c.m.output)];
  if (y != c.logits) std::memcpy(c.logits, y, sizeof(float) * static_cast<size_t>(c.count * c.m.num_classes()));
}

}  // namespace

void run_graph(const IntGraph& g, kernels::Isa isa, WorkspacePool& pool, const float* src, int64_t N, float* dst,
               const CodeTrace& trace) {
  if (N <= 0) return;
  // Chunks of images run in parallel; the GEMMs inside parallelise further (nested TBB). A chunk
  // gives each GEMM about 4096 rows (the convnet at 1 thread ran alike with 2 to 16 images).
  const int64_t chunk = chunk_images(g.input_info());
  const int64_t chunks = (N + chunk - 1) / chunk;
  const int64_t classes = g.num_classes();
  const RunPlan plan = plan_run(g, isa);
  const size_t nv = g.values.size(), no = g.ops.size();
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    std::unique_ptr<Workspace> ws = pool.impl->acquire();
    if (ws->codes.size() < nv) ws->codes.resize(nv);
    if (ws->floats.size() < nv) ws->floats.resize(nv);
    if (ws->packed.size() < no) ws->packed.resize(no);
    if (ws->code_ptrs.size() < nv) ws->code_ptrs.resize(nv);
    if (ws->float_ptrs.size() < nv) ws->float_ptrs.resize(nv);
    for (int64_t ci = c0; ci < c1; ++ci) {
      const int64_t i0 = ci * chunk, cnt = std::min(chunk, N - i0);
      ChunkRun c(g, isa, *ws, trace, i0, cnt, dst + i0 * classes);
      run_chunk(c, plan, src);
    }
    pool.impl->release(std::move(ws));
  });
}

}  // namespace lowbit::intq
