// compare.h: the parity contract between a fake-quant model (eval mode) and the IntGraph exported
// from it: prediction agreement and, per quantized layer, the fraction of input codes that differ
// (the fake-quant side takes Quantizer::codes of the layer's float input, the runtime side the
// codes its conv/linear op consumes, mapped from NHWC / flatten order back to NCHW).
//
// Two mismatch counts per layer:
//   isolated    the runtime is fed the fake-quant codes at every conv/linear input (teacher
//               forcing), so a layer's count is the divergence of the ops since the previous
//               quantized layer alone: what locates a divergence.
//   end_to_end  the runtime runs on its own codes, as deployed: one near-tie flip early on is
//               carried into every later layer, so deep layers inherit upstream flips.
// Near-tie flips come from the fake-quant side's float convolution (its rounding differs from
// the runtime's exact integer accumulation) when a pre-activation lies within float rounding of a
// code boundary; they are rare, and the runtime is the exact one.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "layers/module.h"
#include "core/tensor.h"
#include "quant/runtime/int_graph.h"

namespace lowbit::intq {

struct LayerMismatch {
  std::string name;
  int64_t isolated = 0, end_to_end = 0, total = 0;  // mismatched codes, codes compared
  double isolated_rate() const { return total ? static_cast<double>(isolated) / static_cast<double>(total) : 0.0; }
  double end_to_end_rate() const { return total ? static_cast<double>(end_to_end) / static_cast<double>(total) : 0.0; }
};

// Two prediction agreements, like the two mismatch counts: `agree` as deployed, where an early
// near-tie flip can tip an image whose top two logits are close (undertrained models have many);
// `agree_isolated` with the fake-quant codes fed at every layer, which only the arithmetic of the
// ops can break (it is 1 unless two logits lie within float rounding).
struct CompareStats {
  int64_t images = 0, agree = 0, agree_isolated = 0, fake_correct = 0, int_correct = 0;
  std::vector<LayerMismatch> layers;  // in graph order
  double prediction_agreement() const { return fraction(agree); }
  double prediction_agreement_isolated() const { return fraction(agree_isolated); }
  double max_isolated_mismatch() const;
  double max_end_to_end_mismatch() const;

 private:
  double fraction(int64_t n) const { return images ? static_cast<double>(n) / static_cast<double>(images) : 1.0; }
};

// Runs both on `images` ([N, C, H, W], normalised) and accumulates into `stats`; labels may be
// empty. `model` must be the converted fake-quant model the IntGraph came from.
void compare_batch(Module& model, const IntGraph& im, const Tensor& images, const std::vector<int32_t>& labels,
                   CompareStats& stats);

// The graph on [N, C, H, W] normalised images -> logits [N, classes], at the training library's
// kernel level (kernels::active_isa_level()) in the caller's threads: what the parity checks,
// the tests and the converter's callers run a graph with (apps use quant/runtime/int_model.h).
Tensor run_int_graph(const IntGraph& graph, const Tensor& images, const CodeTrace& trace = nullptr);

// Index of the largest logit per row of [N, K] logits (first one on ties).
std::vector<int64_t> argmax_rows(const Tensor& logits);

}  // namespace lowbit::intq
