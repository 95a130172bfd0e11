// compare.h: the parity contract between a fake-quant model (eval mode) and the IntModel exported
// from it: prediction agreement and, per quantized layer, the fraction of input codes that differ
// (the fake-quant side takes Quantizer::codes of the layer's float input, the runtime side the
// codes its conv/linear op consumes, mapped from NHWC / flatten order back to NCHW).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "layers/module.h"
#include "quant/export/int_model.h"

namespace lowbit::intq {

struct LayerMismatch {
  std::string name;
  int64_t mismatched = 0, total = 0;
  double rate() const { return total ? static_cast<double>(mismatched) / static_cast<double>(total) : 0.0; }
};

struct CompareStats {
  int64_t images = 0, agree = 0, fake_correct = 0, int_correct = 0;
  std::vector<LayerMismatch> layers;  // in graph order
  double prediction_agreement() const { return images ? static_cast<double>(agree) / static_cast<double>(images) : 1.0; }
  double max_code_mismatch() const;
};

// Runs both on `images` ([N, C, H, W], normalised) and accumulates into `stats`; labels may be
// empty. `model` must be the converted fake-quant model the IntModel came from.
void compare_batch(Module& model, const IntModel& im, const Tensor& images, const std::vector<int32_t>& labels,
                   CompareStats& stats);

// Index of the largest logit per row of [N, K] logits (first one on ties).
std::vector<int64_t> argmax_rows(const Tensor& logits);

}  // namespace lowbit::intq
