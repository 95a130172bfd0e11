// int_graph.h: the integer graph (IntGraph) an exported low-bit model is made of, and how it runs
// (INTERNAL to lowbit: what the loader builds, the converter emits, and `lowbit inspect`/compare
// read; apps use the opaque IntModel of quant/runtime/int_model.h or the C API lowbit_runtime.h).
//
// A model is a list of values (named tensors per image, shape [C, H, W], stored NHWC: channels
// innermost) and a list of ops in execution order, each reading values defined before it.
// Value types:
//   codes    uint8 codes, real = scale * (code - zero_point), one byte per code in memory
//   float32  float values (residual paths, pooled features, logits)
// Ops (docs/model-format.md has the file form of every field):
//   quantize  float -> codes with the exact float expression of the training quantizer, so
//             rounding ties go the same way as in the fake-quant model (round half to even):
//             the method's ActCodeRule (formulas: quant/runtime/act_code.h,
//             docs/model-format.md). An unknown method throws lowbit::Error.
//   conv / linear  codes -> codes | float: im2col on codes (padding = the input zero point),
//             packed GEMM (quant/kernels/gemm.h), acc' = acc_mul*acc + rowsum_mul*sum_k a_k,
//             then per output channel c:
//               float: y = fl(fl(acc' * scale[c]) + bias[c])
//               codes: clamp(round(fl(fl(acc' * scale[c]) + bias[c])), 0, out_max_code)
//             (scale, bias fold the weight/activation scales, the zero-point constant, the conv
//             bias, BatchNorm and the next layer's activation quantizer; see convert.h).
//   maxpool   on codes (commutes with every monotone quantizer) or on float
//   gap       global average pool, float -> float [C, 1, 1]
//   add       float + float (residual adds run in float32)
//   relu      float -> float
//   flatten   [C, H, W] -> [C*H*W, 1, 1]; memory order stays (h, w, c): the consumer linear's
//             weight columns are stored in that order (the converter permutes them).
// run_graph() takes float NCHW images (normalised as in training) and writes float logits [N, classes].
// How it runs them (docs/inference-speed.md): chunks of images in parallel; a conv whose signed
// weights fit bytes (every 2/4-bit grid, and the 8-bit odd grid split as 2s' + 1) runs as
// conv_codes (quant/kernels/conv_codes.h: implicit GEMM straight on the NHWC codes, the input
// copied once into a zero-point-bordered image), other convs and linears as packed im2col + GEMM;
// a conv -> add -> relu chain runs as one conv_codes call whose epilogue adds the residual,
// rectifies and writes the codes of the quantize ops that read the result; quantize ops whose
// rule has a SIMD form use quant/kernels/quantize_codes.h. Every path computes the same integers
// and the same float expressions, so logits are bit-identical at every kernel level.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/cpu_features.h"
#include "quant/kernels/conv_codes.h"
#include "quant/kernels/packing.h"
#include "quant/runtime/act_code.h"
#include "quant/runtime/op_kinds.h"

namespace lowbit::intq {

enum class ValueType { codes, float32 };
const char* value_type_name(ValueType type);

struct ValueInfo {
  std::string name;
  ValueType type = ValueType::float32;
  int64_t c = 0, h = 1, w = 1;  // per image; stored NHWC
  int bits = 0;                 // codes: bits of the grid (max code 2^bits - 1, or 2q for "input")
  float scale = 1.f;            // codes: real = scale * (code - zero_point)
  int32_t zero_point = 0;
  int64_t numel() const { return c * h * w; }
};

struct IntOp {
  OpKind kind = OpKind::relu;
  std::string name;          // conv/linear: the module's dotted name in the float model
  std::vector<int> inputs;   // value indices
  int output = -1;

  // quantize: the ActCodeSpec of the quantizer (act_spec): a registered activation method
  // (pact | dorefa | qil | lsq | input), bits, p0, p1 its float parameters
  // (pact alpha; qil c, d; lsq step s; input step S).
  std::string method;
  int bits = 0;
  float p0 = 0.f, p1 = 0.f;

  // conv / linear (linear: kernel 1, stride 1, padding 0 on a [F, 1, 1] input)
  int64_t in_channels = 0, out_channels = 0, kernel = 1, stride = 1, padding = 0;
  int weight_bits = 0;       // bits of the weight grid (packed at pack_bits(weight_bits))
  int act_bits = 0;          // bits of the input codes (packed at pack_bits(act_bits))
  int32_t act_zero_point = 0;
  std::string weight_method, weight_grid;  // provenance for inspect: "sawb", "odd_symmetric"
  float weight_scale = 1.f;
  int32_t acc_mul = 1, rowsum_mul = 0;
  bool out_codes = false;    // epilogue: codes (out_max_code) or float
  int out_max_code = 0;
  std::shared_ptr<kernels::PackedWeights> weights;  // W[n][k], k = (kh*KW + kw)*Cin + c
  // The same weights as signed bytes for conv_codes (set by prepare_runtime when they fit), and
  // the kernel measured fastest for this layer at conv_kernel_isa (fastest_conv_codes_kernel);
  // at any other level conv_codes takes its table's first applicable row.
  std::shared_ptr<kernels::ConvCodesWeights> conv_weights;
  const kernels::ConvCodesKernel* conv_kernel = nullptr;
  kernels::Isa conv_kernel_isa = kernels::Isa::scalar;
  std::vector<float> scale, bias;  // out_channels each

  // maxpool
  int64_t pool_kernel = 0, pool_stride = 0, pool_padding = 0;
};

// Smallest packed width (2, 4, 8) holding `bits`-bit codes.
int pack_bits(int bits);

// Run-time forms derived from an op's packed weights (call once the op is complete; in and out:
// its input and output values): a conv whose signed weights fit bytes (or split as 2s' + t,
// conv_codes.h) runs as conv_codes (implicit GEMM on the NHWC codes) instead of im2col + packed
// GEMM; the integers, hence the outputs, are the same. Where level `isa` has several kernels for
// the layer, the fastest on this CPU is measured once here, on chunk_images images (what
// run_graph() hands each op: chunk_images(model input)); run_graph at another level takes its
// table's first applicable row.
void prepare_runtime(IntOp& op, const ValueInfo& in, const ValueInfo& out, int64_t chunk_images, kernels::Isa isa);

// Images per chunk of run_graph(): about 4096 input pixels, 1 to 64 images.
int64_t chunk_images(const ValueInfo& model_input);

// Called for every conv/linear op with its input codes for images [image0, image0 + count),
// NHWC, value_numel bytes per image. Returns the codes the op (and later readers of that value in
// this chunk) should use: `codes` itself, or a replacement of the same size that stays valid
// until run_graph() returns (quant/export/compare.h feeds the fake-quant codes this way).
using CodeTrace =
    std::function<const uint8_t*(const IntOp& op, int64_t image0, int64_t count, const uint8_t* codes)>;

struct IntGraph {
  std::vector<ValueInfo> values;
  std::vector<IntOp> ops;
  int input = 0, output = -1;
  std::vector<float> mean, std;           // input normalisation, per channel (pixel/255 units)
  std::vector<std::string> class_names;
  std::string method;                     // quantization method of the source model
  nlohmann::json provenance = nlohmann::json::object();

  int64_t num_classes() const { return values.at(output).numel(); }
  const ValueInfo& input_info() const { return values.at(input); }

  // Bytes of the file's data section: stored_bytes() summed over the conv/linear ops.
  int64_t parameter_bytes() const;
};

// Working memory of run_graph(), reused across calls: per task a set of buffers that only grow,
// so a steady stream of batches allocates nothing. One pool per model (never process-wide);
// acquire/release are thread-safe, so concurrent run_graph calls may share a pool.
class WorkspacePool {
 public:
  WorkspacePool();
  ~WorkspacePool();
  WorkspacePool(const WorkspacePool&) = delete;
  WorkspacePool& operator=(const WorkspacePool&) = delete;
  struct Impl;
  std::unique_ptr<Impl> impl;
};

// images: [n, C, H, W] float (normalised), logits: [n, classes]. Runs the kernels of level `isa`
// (isa_supported(isa) must hold). Parallel over chunks of images and inside the GEMMs
// (lowbit::parallel_for in the caller's TBB arena); deterministic for any thread count. Reads
// the graph only, so concurrent calls on one graph are safe.
void run_graph(const IntGraph& graph, kernels::Isa isa, WorkspacePool& pool, const float* images, int64_t n,
               float* logits, const CodeTrace& trace = nullptr);

// Bytes the file stores for a conv/linear op: its dense weight rows (out_channels x ceil(K / P),
// docs/model-format.md) and its [2, out_channels] float32 epilogue.
int64_t stored_bytes(const IntOp& op);

// The kernel a conv / linear op runs with at level `isa`: the conv_codes kernel name of
// the level's table (e.g. "avx2.pair_lut", "avx512.vpdpbusd") or "<level>.gemm" (packed im2col /
// rows + the GEMM); "" for the other ops. `lowbit inspect` and `bench infer --json` report it.
std::string op_kernel(const IntOp& op, kernels::Isa isa);

// The spec of a quantize op's rule.
ActCodeSpec act_spec(const IntOp& op);
// The standalone float -> code rule of a quantize op (scalar, the exact training expression).
// Both throw lowbit::Error naming the method when it is not a registered activation method.
uint8_t quantize_value(const IntOp& op, float x);
// quantize_value over count floats (vectorised at level `isa`; the same codes).
void quantize_values(const IntOp& op, const float* x, int64_t count, uint8_t* out, kernels::Isa isa);

}  // namespace lowbit::intq
