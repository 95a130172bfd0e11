// compare.cpp: fake-quant vs integer runtime, per layer and per prediction (see compare.h).
#include "quant/export/compare.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "core/autograd.h"
#include "core/error.h"
#include "quant/quant_layers.h"

namespace lowbit::intq {

double CompareStats::max_isolated_mismatch() const {
  double m = 0;
  for (const auto& l : layers) m = std::max(m, l.isolated_rate());
  return m;
}

double CompareStats::max_end_to_end_mismatch() const {
  double m = 0;
  for (const auto& l : layers) m = std::max(m, l.end_to_end_rate());
  return m;
}

Tensor run_int_graph(const IntGraph& graph, const Tensor& images, const CodeTrace& trace) {
  const ValueInfo& in = graph.input_info();
  LOWBIT_CHECK(images.dim() == 4 && images.size(1) == in.c && images.size(2) == in.h && images.size(3) == in.w,
               "integer model: expected images [N, ", in.c, ", ", in.h, ", ", in.w, "], got ",
               to_string(images.shape()));
  Tensor logits = Tensor::empty({images.size(0), graph.num_classes()});
  WorkspacePool pool;
  run_graph(graph, kernels::active_isa_level(), pool, images.data(), images.size(0), logits.data(), trace);
  return logits;
}

std::vector<int64_t> argmax_rows(const Tensor& logits) {
  const int64_t n = logits.size(0), k = logits.size(1);
  std::vector<int64_t> out(static_cast<size_t>(n));
  const float* p = logits.data();
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = std::max_element(p + i * k, p + (i + 1) * k) - (p + i * k);
  return out;
}

void compare_batch(Module& model, const IntGraph& im, const Tensor& images, const std::vector<int32_t>& labels,
                   CompareStats& stats) {
  NoGradGuard no_grad;
  model.eval();
  // Fake-quant side: the codes each layer's activation quantizer produces, by layer name.
  std::map<std::string, std::vector<uint8_t>> fq_codes;
  std::vector<std::shared_ptr<Quantizer>> observed;
  for (auto& [name, m] : model.named_modules()) {
    std::shared_ptr<Quantizer> aq;
    if (auto ql = dynamic_cast<QuantLayer*>(m.get())) aq = ql->act_quantizer;
    if (!aq) continue;
    const std::string layer = name;
    Quantizer* q = aq.get();
    aq->set_observer([&fq_codes, layer, q](const Tensor& x) { fq_codes[layer] = q->codes(x).codes; });
    observed.push_back(aq);
  }
  Tensor fq_logits;
  try {
    fq_logits = model.forward(images);
  } catch (...) {
    for (auto& q : observed) q->set_observer(nullptr);
    throw;
  }
  for (auto& q : observed) q->set_observer(nullptr);

  // Producer of each value, to undo the runtime's layouts.
  std::vector<const IntOp*> producer(im.values.size(), nullptr);
  for (const auto& op : im.ops) producer[static_cast<size_t>(op.output)] = &op;
  if (stats.layers.empty())
    for (const auto& op : im.ops)
      if (op.kind == OpKind::conv || op.kind == OpKind::linear) stats.layers.push_back(LayerMismatch{op.name});
  // The fake-quant codes of layer `op` for images [image0, image0 + count) in the runtime's
  // layout (NHWC of the value a flatten flattened, or of the value itself).
  auto reference_codes = [&](const IntOp& op, int64_t image0, int64_t count) {
    auto it = fq_codes.find(op.name);
    LOWBIT_CHECK(it != fq_codes.end(), "compare: the fake-quant model has no quantized layer '", op.name, "'");
    ValueInfo v = im.values[static_cast<size_t>(op.inputs[0])];
    for (const IntOp* p = producer[static_cast<size_t>(op.inputs[0])]; p; p = producer[static_cast<size_t>(p->inputs[0])]) {
      if (p->kind == OpKind::flatten) {
        v = im.values[static_cast<size_t>(p->inputs[0])];
        break;
      }
      if (p->kind != OpKind::quantize) break;
    }
    const int64_t per = v.numel(), hw = v.h * v.w;
    LOWBIT_CHECK(static_cast<int64_t>(it->second.size()) >= (image0 + count) * per, "compare: layer '", op.name,
                 "' has ", it->second.size(), " fake-quant codes, expected ", images.size(0) * per);
    std::vector<uint8_t> nhwc(static_cast<size_t>(count * per));
    for (int64_t img = 0; img < count; ++img)
      for (int64_t p = 0; p < hw; ++p)
        for (int64_t c = 0; c < v.c; ++c)
          nhwc[static_cast<size_t>((img * hw + p) * v.c + c)] = it->second[static_cast<size_t>((image0 + img) * per + c * hw + p)];
    return nhwc;
  };
  auto layer = [&](const std::string& name) -> LayerMismatch& {
    for (auto& l : stats.layers)
      if (l.name == name) return l;
    throw Error("compare: no layer " + name);
  };
  std::mutex mu;
  // forced: hand the runtime the fake-quant codes (kept alive until run() returns).
  std::vector<std::unique_ptr<std::vector<uint8_t>>> forced_inputs;
  auto count_mismatches = [&](bool forced) {
    return [&, forced](const IntOp& op, int64_t image0, int64_t count, const uint8_t* codes) -> const uint8_t* {
      auto ref = std::make_unique<std::vector<uint8_t>>(reference_codes(op, image0, count));
      int64_t bad = 0;
      for (size_t i = 0; i < ref->size(); ++i) bad += codes[i] != (*ref)[i];
      std::lock_guard<std::mutex> lock(mu);
      LayerMismatch& l = layer(op.name);
      if (forced) {
        l.isolated += bad;
        forced_inputs.push_back(std::move(ref));
        return forced_inputs.back()->data();
      }
      l.end_to_end += bad;
      l.total += static_cast<int64_t>(ref->size());
      return codes;
    };
  };
  const auto isolated = argmax_rows(run_int_graph(im, images, count_mismatches(true)));
  const Tensor int_logits = run_int_graph(im, images, count_mismatches(false));
  const auto a = argmax_rows(fq_logits), b = argmax_rows(int_logits);
  for (size_t i = 0; i < a.size(); ++i) {
    stats.agree += a[i] == b[i];
    stats.agree_isolated += a[i] == isolated[i];
    if (i < labels.size()) {
      stats.fake_correct += a[i] == labels[i];
      stats.int_correct += b[i] == labels[i];
    }
  }
  stats.images += static_cast<int64_t>(a.size());
}

}  // namespace lowbit::intq
