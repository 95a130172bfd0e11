// ops_loss.cpp: log-softmax, NLL and fused cross-entropy with gradients.
#include "core/ops_loss.h"

#include <algorithm>
#include <cmath>

#include "core/autograd.h"
#include "core/error.h"

namespace lowbit {

namespace {
void check_targets(const Tensor& z, const std::vector<int32_t>& targets, const char* op) {
  LOWBIT_CHECK(z.dim() == 2, op, ": expected [N, classes], got ", to_string(z.shape()));
  LOWBIT_CHECK(static_cast<int64_t>(targets.size()) == z.size(0), op, ": ", targets.size(),
               " targets for ", z.size(0), " rows");
  for (int32_t t : targets)
    LOWBIT_CHECK(t >= 0 && t < z.size(1), op, ": target ", t, " outside [0, ", z.size(1), ")");
}
void log_softmax_rows(const float* z, float* out, int64_t rows, int64_t k) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* zr = z + r * k;
    const float m = *std::max_element(zr, zr + k);
    double s = 0;
    for (int64_t j = 0; j < k; ++j) s += std::exp(static_cast<double>(zr[j] - m));
    const float lse = m + static_cast<float>(std::log(s));
    for (int64_t j = 0; j < k; ++j) out[r * k + j] = zr[j] - lse;
  }
}
}  // namespace

Tensor log_softmax(const Tensor& logits) {
  LOWBIT_CHECK(logits.dim() == 2, "log_softmax: expected [N, classes], got ", to_string(logits.shape()));
  const int64_t rows = logits.size(0), k = logits.size(1);
  Tensor y = Tensor::empty(logits.shape());
  log_softmax_rows(logits.data(), y.data(), rows, k);
  return record(y, "log_softmax", {logits}, [y = y.detach(), rows, k](const Tensor& g) {
    // dz = g - softmax * sum(g)
    Tensor dz = Tensor::empty(y.shape());
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t j = 0; j < k; ++j) s += g.data()[r * k + j];
      for (int64_t j = 0; j < k; ++j)
        dz.data()[r * k + j] = g.data()[r * k + j] - std::exp(y.data()[r * k + j]) * static_cast<float>(s);
    }
    return std::vector<Tensor>{dz};
  });
}

Tensor nll_loss(const Tensor& log_probs, const std::vector<int32_t>& targets) {
  check_targets(log_probs, targets, "nll_loss");
  const int64_t rows = log_probs.size(0), k = log_probs.size(1);
  double s = 0;
  for (int64_t r = 0; r < rows; ++r) s -= log_probs.data()[r * k + targets[r]];
  const Shape shape = log_probs.shape();
  return record(Tensor::scalar(static_cast<float>(s / rows)), "nll_loss", {log_probs},
                [shape, targets, rows, k](const Tensor& g) {
    Tensor d = Tensor::zeros(shape);
    const float v = -g.item() / static_cast<float>(rows);
    for (int64_t r = 0; r < rows; ++r) d.data()[r * k + targets[r]] = v;
    return std::vector<Tensor>{d};
  });
}

Tensor cross_entropy(const Tensor& logits, const std::vector<int32_t>& targets) {
  check_targets(logits, targets, "cross_entropy");
  const int64_t rows = logits.size(0), k = logits.size(1);
  LOWBIT_CHECK(rows > 0, "cross_entropy: empty batch");
  Tensor lp = Tensor::empty(logits.shape());
  log_softmax_rows(logits.data(), lp.data(), rows, k);
  double s = 0;
  for (int64_t r = 0; r < rows; ++r) s -= lp.data()[r * k + targets[r]];
  return record(Tensor::scalar(static_cast<float>(s / rows)), "cross_entropy", {logits},
                [lp, targets, rows, k](const Tensor& g) {
    Tensor d = Tensor::empty(lp.shape());
    const float scale = g.item() / static_cast<float>(rows);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < k; ++j)
        d.data()[r * k + j] = (std::exp(lp.data()[r * k + j]) - (j == targets[r] ? 1.f : 0.f)) * scale;
    return std::vector<Tensor>{d};
  });
}

std::vector<int32_t> argmax_rows(const Tensor& logits) {
  LOWBIT_CHECK(logits.dim() == 2, "argmax_rows: expected [N, classes], got ", to_string(logits.shape()));
  const int64_t rows = logits.size(0), k = logits.size(1);
  std::vector<int32_t> out(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = logits.data() + r * k;
    out[r] = static_cast<int32_t>(std::max_element(z, z + k) - z);
  }
  return out;
}

}  // namespace lowbit
