// scores.h: logits -> softmax probabilities and top-k classes (what `lowbit infer IMAGE`, the
// C API and IntModel::top_k print), one implementation so they agree bit for bit.
//   p_k = exp(l_k - max_j l_j) / sum_j exp(l_j - max_j l_j), in double;
//   top-k: indices by logit, largest first, equal logits in index order (stable).
#pragma once
#include <cstdint>
#include <vector>

namespace lowbit {

void softmax_probabilities(const float* logits, int64_t classes, double* out);
std::vector<int64_t> top_classes(const float* logits, int64_t classes, int64_t k);

}  // namespace lowbit
