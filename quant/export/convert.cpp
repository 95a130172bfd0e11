// convert.cpp: the walker that turns a fake-quant module tree into an IntGraph (rules in convert.h).
#include "quant/export/convert.h"

#include <cmath>
#include <optional>

#include "core/error.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/residual.h"
#include "layers/sequential.h"
#include "quant/kernels/gemm.h"
#include "quant/quant_layers.h"
#include "quant/runtime/model_file.h"
#include "quant/registry.h"

namespace lowbit::intq {
namespace {

// The quantize op of an activation quantizer: its integer spec (Quantizer::code_spec), checked
// against its method's rule (quant/registry.h).
IntOp quantize_op_for(const Quantizer& q, const std::string& layer) {
  LOWBIT_CHECK(q.initialized(), "export: the activation quantizer of layer '", layer,
               "' was never initialised (train with quantization enabled first)");
  ActCodeSpec spec;
  std::string problem;
  try {
    spec = q.code_spec();
    problem = act_code_rule(spec.method).check(spec);
  } catch (const Error& e) {
    problem = e.what();
  }
  LOWBIT_CHECK(problem.empty(), "export: layer '", layer, "' has an activation quantizer (", q.type_name(),
               ") the integer runtime cannot run: ", problem);
  IntOp op;
  op.kind = OpKind::quantize;
  op.name = layer + ".act_quantizer";
  op.method = spec.method;
  op.bits = spec.bits;
  op.p0 = spec.p0;
  op.p1 = spec.p1;
  return op;
}

// y -> mul*y + add of a fusable quantizer (code = clamp(round(mul*y + add), 0, n)).
bool fused_affine(const IntOp& q, double& mul, double& add) {
  const std::optional<CodeAffine> a = act_code_rule(q.method).affine(act_spec(q));
  if (!a) return false;
  mul = a->mul;
  add = a->add;
  return mul > 0 && std::isfinite(mul) && std::isfinite(add);
}

struct Walker {
  IntGraph m;
  // A conv/linear whose epilogue is not decided yet, and the ops deferred after it.
  struct Pending {
    IntOp op;
    std::vector<double> A, B;
    bool relu = false;
    std::vector<IntOp> deferred;  // maxpool / flatten, inputs/outputs filled when materialised
    int64_t c = 0, h = 0, w = 0;  // logical output shape after the deferred ops
    int64_t conv_h = 0, conv_w = 0;
  };
  std::optional<Pending> pending;
  int cur = -1;  // current value when nothing is pending
  std::vector<std::array<int64_t, 3>> flattened_from;  // per value: shape before flatten (or 0s)

  int add_value(ValueInfo v) {
    v.name = "v" + std::to_string(m.values.size());
    m.values.push_back(v);
    flattened_from.push_back({0, 0, 0});
    return static_cast<int>(m.values.size()) - 1;
  }

  int emit_deferred(int v, const std::vector<IntOp>& deferred) {
    for (IntOp op : deferred) {
      const ValueInfo in = m.values[static_cast<size_t>(v)];
      ValueInfo out = in;
      op.inputs = {v};
      if (op.kind == OpKind::maxpool) {
        out.h = (in.h + 2 * op.pool_padding - op.pool_kernel) / op.pool_stride + 1;
        out.w = (in.w + 2 * op.pool_padding - op.pool_kernel) / op.pool_stride + 1;
      } else {  // flatten
        out.c = in.c * in.h * in.w;
        out.h = out.w = 1;
      }
      op.output = add_value(out);
      if (op.kind == OpKind::flatten) flattened_from[static_cast<size_t>(op.output)] = {in.c, in.h, in.w};
      m.ops.push_back(op);
      v = op.output;
    }
    return v;
  }

  // Pending -> float value (z, then relu and the deferred ops in float).
  int materialize_float() {
    if (!pending) return cur;
    Pending p = std::move(*pending);
    pending.reset();
    p.op.out_codes = false;
    p.op.scale.resize(p.A.size());
    p.op.bias.resize(p.B.size());
    for (size_t c = 0; c < p.A.size(); ++c) {
      p.op.scale[c] = static_cast<float>(p.A[c]);
      p.op.bias[c] = static_cast<float>(p.B[c]);
    }
    ValueInfo out;
    out.type = ValueType::float32;
    out.c = p.op.out_channels;
    out.h = p.conv_h;
    out.w = p.conv_w;
    p.op.output = add_value(out);
    int v = p.op.output;
    m.ops.push_back(std::move(p.op));
    if (p.relu) {
      IntOp r;
      r.kind = OpKind::relu;
      r.name = "relu" + std::to_string(m.ops.size());
      r.inputs = {v};
      r.output = add_value(m.values[static_cast<size_t>(v)]);
      m.ops.push_back(r);
      v = r.output;
    }
    cur = emit_deferred(v, p.deferred);
    return cur;
  }

  // The codes of `q` applied to the current value: fused into a pending epilogue when possible.
  int codes_for(const Quantizer& q, const std::string& layer) {
    IntOp qop = quantize_op_for(q, layer);
    double mul = 0, add = 0;
    if (pending && fused_affine(qop, mul, add)) {
      // ReLU folds into the clamp at 0 only when Q(0) = 0.
      const bool relu_ok = !pending->relu || quantize_value(qop, 0.f) == 0;
      if (relu_ok) {
        Pending p = std::move(*pending);
        pending.reset();
        const int n = (1 << qop.bits) - 1;
        p.op.out_codes = true;
        p.op.out_max_code = n;
        p.op.scale.resize(p.A.size());
        p.op.bias.resize(p.B.size());
        for (size_t c = 0; c < p.A.size(); ++c) {
          p.op.scale[c] = static_cast<float>(mul * p.A[c]);
          p.op.bias[c] = static_cast<float>(mul * p.B[c] + add);
        }
        ValueInfo out;
        out.type = ValueType::codes;
        out.c = p.op.out_channels;
        out.h = p.conv_h;
        out.w = p.conv_w;
        out.bits = qop.bits;
        // The real value of a code is the quantizer's own scale (QIL: 1/n, normalised), not 1/mul.
        const QuantizedCodes probe = q.codes(Tensor::zeros({1}));
        out.scale = probe.scale;
        out.zero_point = probe.zero_point;
        p.op.output = add_value(out);
        const int v = p.op.output;
        m.ops.push_back(std::move(p.op));
        cur = emit_deferred(v, p.deferred);
        return cur;
      }
    }
    const int v = materialize_float();
    LOWBIT_CHECK(m.values[static_cast<size_t>(v)].type == ValueType::float32, "export: layer '", layer,
                 "' would quantize codes twice");
    qop.inputs = {v};
    ValueInfo out = m.values[static_cast<size_t>(v)];
    out.type = ValueType::codes;
    out.bits = qop.bits;
    const QuantizedCodes probe = q.codes(Tensor::zeros({1}));
    out.scale = probe.scale;
    out.zero_point = probe.zero_point;
    qop.output = add_value(out);
    flattened_from[static_cast<size_t>(qop.output)] = flattened_from[static_cast<size_t>(v)];
    m.ops.push_back(qop);
    cur = qop.output;
    return cur;
  }

  void quant_layer(const std::string& name, Module& layer, QuantLayer& ql) {
    const QuantLayerGeometry g = ql.geometry();
    LOWBIT_CHECK(g.groups == 1 && g.dilation == 1, "export: conv '", name,
                 "' uses groups/dilation, which the integer runtime does not support");
    const Tensor& weight = ql.float_weight();
    const Tensor& bias = ql.float_bias();
    const Quantizer* wq = ql.weight_quantizer.get();
    const Quantizer* aq = ql.act_quantizer.get();
    const bool is_linear = g.linear;
    const int64_t kernel = g.kernel, stride = g.stride, padding = g.padding;
    LOWBIT_CHECK(wq && aq, "export: layer '", name, "' (", layer.type_name(),
                 ") is not quantized on both sides (weights ", wq ? "quantized" : "float", ", input ",
                 aq ? "quantized" : "float", "); the integer runtime needs both (quantize_input, bits <= 8)");
    const int in = codes_for(*aq, name);
    const ValueInfo vin = m.values[static_cast<size_t>(in)];
    LOWBIT_CHECK(vin.type == ValueType::codes, "export: layer '", name, "' input is not codes");
    IntOp op;
    op.kind = is_linear ? OpKind::linear : OpKind::conv;
    op.name = name;
    op.inputs = {in};
    const int64_t cout = weight.size(0), cin = is_linear ? weight.size(1) : weight.size(1);
    op.in_channels = is_linear ? vin.numel() : vin.c;
    op.out_channels = cout;
    op.kernel = kernel;
    op.stride = stride;
    op.padding = padding;
    int64_t ho = 1, wo = 1;
    if (is_linear) {
      LOWBIT_CHECK(cin == vin.numel(), "export: linear '", name, "' expects ", cin, " inputs, gets ", vin.numel());
    } else {
      LOWBIT_CHECK(cin == vin.c, "export: conv '", name, "' expects ", cin, " input channels, gets ", vin.c);
      ho = (vin.h + 2 * padding - kernel) / stride + 1;
      wo = (vin.w + 2 * padding - kernel) / stride + 1;
    }
    // Weight codes with the training grid.
    const QuantizedCodes qc = wq->codes(weight);
    op.weight_bits = qc.bits;
    op.act_bits = vin.bits;
    op.act_zero_point = vin.zero_point;
    op.weight_method = wq->method();
    op.weight_grid = grid_name(qc.grid);
    op.weight_scale = qc.scale;
    const int nw = (1 << qc.bits) - 1;
    int32_t wm = 1, w0 = -qc.zero_point;
    double sw = qc.scale;
    if (qc.grid == CodeGrid::odd_symmetric) {
      wm = 2;
      w0 = -nw;
      sw = static_cast<double>(qc.scale) / nw;
    }
    op.acc_mul = wm;
    op.rowsum_mul = w0;
    // Reorder to k = (kh*KW + kw)*Cin + c (conv) or the (h, w, c) flatten order (linear).
    const int64_t K = is_linear ? cin : cin * kernel * kernel;
    std::vector<uint8_t> wk(static_cast<size_t>(cout * K));
    const auto ff = flattened_from[static_cast<size_t>(in)];
    for (int64_t o = 0; o < cout; ++o) {
      if (!is_linear) {
        for (int64_t c = 0; c < cin; ++c)
          for (int64_t kh = 0; kh < kernel; ++kh)
            for (int64_t kw = 0; kw < kernel; ++kw)
              wk[o * K + (kh * kernel + kw) * cin + c] = qc.codes[((o * cin + c) * kernel + kh) * kernel + kw];
      } else if (ff[0] > 0 && ff[1] * ff[2] > 1) {
        const int64_t C = ff[0], H = ff[1], W = ff[2];
        for (int64_t c = 0; c < C; ++c)
          for (int64_t hw = 0; hw < H * W; ++hw) wk[o * K + hw * C + c] = qc.codes[o * K + c * H * W + hw];
      } else {
        for (int64_t k = 0; k < K; ++k) wk[o * K + k] = qc.codes[o * K + k];
      }
    }
    op.weights = std::make_shared<kernels::PackedWeights>(kernels::pack_weights(wk.data(), cout, K, K, pack_bits(qc.bits)));
    const int64_t limit = kernels::gemm_k_limit(pack_bits(qc.bits), pack_bits(vin.bits), wm, w0);
    LOWBIT_CHECK(op.weights->k_pad <= limit, "export: layer '", name, "' has K = ", K,
                 " which could overflow the int32 accumulator at these bits (limit ", limit, ")");
    Pending p;
    p.A.assign(static_cast<size_t>(cout), sw * vin.scale);
    p.B.assign(static_cast<size_t>(cout), 0.0);
    for (int64_t o = 0; o < cout; ++o) {
      // K0 = -za * (wm * sum_k m + w0 * K): the signed-input zero-point constant.
      const double k0 = -static_cast<double>(vin.zero_point) *
                        (static_cast<double>(wm) * op.weights->row_sums[static_cast<size_t>(o)] +
                         static_cast<double>(w0) * K);
      p.B[static_cast<size_t>(o)] = p.A[static_cast<size_t>(o)] * k0 + (bias.defined() ? bias.data()[o] : 0.f);
    }
    p.op = std::move(op);
    p.c = cout;
    p.h = p.conv_h = ho;
    p.w = p.conv_w = wo;
    pending = std::move(p);
    (void)layer;
  }

  void batchnorm(const std::string& name, const BatchNorm2d& bn) {
    LOWBIT_CHECK(pending && pending->deferred.empty() && !pending->relu, "export: BatchNorm '", name,
                 "' must directly follow a quantized conv/linear");
    for (int64_t c = 0; c < bn.channels; ++c) {
      const double gamma = bn.weight.defined() ? bn.weight->data()[c] : 1.0;
      const double beta = bn.bias.defined() ? bn.bias->data()[c] : 0.0;
      const double g = gamma / std::sqrt(static_cast<double>(bn.running_var->data()[c]) + bn.eps);
      auto& A = pending->A[static_cast<size_t>(c)];
      auto& B = pending->B[static_cast<size_t>(c)];
      A *= g;
      B = (B - bn.running_mean->data()[c]) * g + beta;
    }
    if (bn.fused_relu) pending->relu = true;
  }

  void relu() {
    if (pending && pending->deferred.empty()) {
      pending->relu = true;
      return;
    }
    if (pending) materialize_float();
    const ValueInfo vi = m.values[static_cast<size_t>(cur)];
    LOWBIT_CHECK(vi.type == ValueType::float32 || vi.zero_point == 0, "export: ReLU on signed codes");
    if (vi.type == ValueType::codes) return;  // codes with zero point 0 are already >= 0
    IntOp r;
    r.kind = OpKind::relu;
    r.name = "relu" + std::to_string(m.ops.size());
    r.inputs = {cur};
    r.output = add_value(vi);
    m.ops.push_back(r);
    cur = r.output;
  }

  void maxpool(const MaxPool2d& mp) {
    IntOp op;
    op.kind = OpKind::maxpool;
    op.name = "maxpool" + std::to_string(m.ops.size());
    op.pool_kernel = mp.kernel;
    op.pool_stride = mp.stride;
    op.pool_padding = mp.padding;
    if (pending) {
      pending->deferred.push_back(op);
      return;
    }
    cur = emit_deferred(cur, {op});
  }

  void flatten() {
    IntOp op;
    op.kind = OpKind::flatten;
    op.name = "flatten" + std::to_string(m.ops.size());
    if (pending) {
      pending->deferred.push_back(op);
      return;
    }
    cur = emit_deferred(cur, {op});
  }

  void gap() {
    const int v = materialize_float();
    const ValueInfo vi = m.values[static_cast<size_t>(v)];
    LOWBIT_CHECK(vi.type == ValueType::float32, "export: global average pool on codes");
    IntOp op;
    op.kind = OpKind::gap;
    op.name = "gap" + std::to_string(m.ops.size());
    op.inputs = {v};
    ValueInfo out = vi;
    out.h = out.w = 1;
    op.output = add_value(out);
    m.ops.push_back(op);
    cur = op.output;
  }

  void block(const std::string& name, BasicBlock& b) {
    const int x = materialize_float();
    auto conv_of = [&](const std::string& n, Conv2d& c) {
      auto* ql = dynamic_cast<QuantLayer*>(&c);
      LOWBIT_CHECK(ql, "export: conv '", n, "' is not quantized (convert the model first)");
      quant_layer(n, c, *ql);
    };
    cur = x;
    conv_of(name + ".conv1", *b.conv1);
    batchnorm(name + ".bn1", *b.bn1);
    walk(name + ".relu1", b.relu1);
    conv_of(name + ".conv2", *b.conv2);
    batchnorm(name + ".bn2", *b.bn2);
    const int y = materialize_float();
    int s = x;
    if (b.shortcut_conv) {
      cur = x;
      conv_of(name + ".shortcut_conv", *b.shortcut_conv);
      batchnorm(name + ".shortcut_bn", *b.shortcut_bn);
      s = materialize_float();
    }
    IntOp add;
    add.kind = OpKind::add;
    add.name = name + ".add";
    add.inputs = {y, s};
    add.output = add_value(m.values[static_cast<size_t>(y)]);
    m.ops.push_back(add);
    cur = add.output;
    walk(name + ".relu2", b.relu2);
  }

  void walk(const std::string& name, const std::shared_ptr<Module>& mod) {
    Module& md = *mod;
    if (auto seq = dynamic_cast<Sequential*>(&md)) {
      for (size_t i = 0; i < seq->size(); ++i)
        walk(name.empty() ? std::to_string(i) : name + "." + std::to_string(i), seq->at(i));
    } else if (auto ql = dynamic_cast<QuantLayer*>(&md)) {
      quant_layer(name, md, *ql);
    } else if (auto bn = dynamic_cast<BatchNorm2d*>(&md)) {
      batchnorm(name, *bn);
    } else if (dynamic_cast<ReLU*>(&md)) {
      relu();
    } else if (auto mp = dynamic_cast<MaxPool2d*>(&md)) {
      maxpool(*mp);
    } else if (dynamic_cast<Flatten*>(&md)) {
      flatten();
    } else if (dynamic_cast<GlobalAvgPool2d*>(&md)) {
      gap();
    } else if (auto b = dynamic_cast<BasicBlock*>(&md)) {
      block(name, *b);
    } else if (dynamic_cast<Dropout*>(&md) || dynamic_cast<Identity*>(&md)) {
      // identity in eval mode
    } else {
      LOWBIT_CHECK(false, "export: module '", name, "' (", md.type_name(),
                   ") is not supported by the integer runtime (Conv2d, Linear: quantized; BatchNorm2d, ReLU, "
                   "MaxPool2d, Flatten, GlobalAvgPool2d, BasicBlock, Dropout, Identity)");
    }
  }
};

}  // namespace

void check_export_info(const ExportInfo& info) {
  using Limits = ModelFileLimits;
  LOWBIT_CHECK(info.channels >= 1 && info.channels <= Limits::channels && info.height >= 1 &&
                   info.height <= Limits::spatial && info.width >= 1 && info.width <= Limits::spatial,
               "ExportInfo: input shape ", info.channels, "x", info.height, "x", info.width, " must be 1..",
               Limits::channels, " channels and 1..", Limits::spatial, " pixels high and wide");
  for (const auto* v : {&info.mean, &info.std}) {
    const char* name = v == &info.mean ? "mean" : "std";
    LOWBIT_CHECK(static_cast<int64_t>(v->size()) == info.channels, "ExportInfo.", name,
                 " must have one entry per input channel (", info.channels, "), has ", v->size(),
                 " (the training data's normalization: ServingInfo::from_dataset)");
    for (float x : *v)
      LOWBIT_CHECK(std::isfinite(x) && std::fabs(x) <= 3.0e38f && (v == &info.mean || x > 0.f), "ExportInfo.", name,
                   " has ", x, "; expected finite", v == &info.mean ? "" : ", positive", " values");
  }
  LOWBIT_CHECK(static_cast<int64_t>(info.class_names.size()) <= Limits::classes_names, "ExportInfo.class_names has ",
               info.class_names.size(), " names, above the limit ", Limits::classes_names);
  LOWBIT_CHECK(info.provenance.is_object(), "ExportInfo.provenance must be a JSON object, is ", info.provenance.type_name());
}

IntGraph convert_to_int(Module& model, const ExportInfo& info) {
  check_export_info(info);
  model.eval();
  Walker w;
  ValueInfo in;
  in.type = ValueType::float32;
  in.c = info.channels;
  in.h = info.height;
  in.w = info.width;
  w.m.input = w.add_value(in);
  w.cur = w.m.input;
  // The root is walked as a child of nothing: a shared_ptr that does not own it.
  std::shared_ptr<Module> root(&model, [](Module*) {});
  w.walk("", root);
  w.m.output = w.materialize_float();
  IntGraph out = std::move(w.m);
  LOWBIT_CHECK(out.output != out.input && out.values[static_cast<size_t>(out.output)].type == ValueType::float32,
               "export: the model produced no float output");
  out.mean = info.mean;
  out.std = info.std;
  LOWBIT_CHECK(info.class_names.empty() || static_cast<int64_t>(info.class_names.size()) == out.num_classes(),
               "ExportInfo.class_names has ", info.class_names.size(), " names; the model has ", out.num_classes(),
               " classes (give one name per class, or none)");
  out.class_names = info.class_names;
  out.method = info.method;
  out.provenance = info.provenance;
  for (IntOp& op : out.ops)
    prepare_runtime(op, out.values[static_cast<size_t>(op.inputs[0])], out.values[static_cast<size_t>(op.output)],
                    chunk_images(out.values[static_cast<size_t>(out.input)]), kernels::active_isa_level());
  return out;
}

}  // namespace lowbit::intq
