// scores.cpp: softmax and top-k over one image's logits (scores.h).
#include "quant/runtime/scores.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace lowbit {

void softmax_probabilities(const float* logits, int64_t classes, double* out) {
  if (classes <= 0) return;
  const float mx = *std::max_element(logits, logits + classes);
  double sum = 0;
  for (int64_t k = 0; k < classes; ++k) sum += out[k] = std::exp(logits[k] - mx);
  for (int64_t k = 0; k < classes; ++k) out[k] /= sum;
}

std::vector<int64_t> top_classes(const float* logits, int64_t classes, int64_t k) {
  std::vector<int64_t> order(static_cast<size_t>(std::max<int64_t>(classes, 0)));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  order.resize(static_cast<size_t>(std::clamp<int64_t>(k, 0, classes)));
  return order;
}

}  // namespace lowbit
