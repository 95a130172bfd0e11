// ops_loss.h: numerically stable log-softmax and the classification losses built on it.
// log_softmax(z)_j = z_j - max(z) - log(sum_k exp(z_k - max(z)))  over the last dim of [N, K].
// cross_entropy(z, t) = mean_i -log_softmax(z_i)_{t_i}; gradient (softmax(z_i) - onehot(t_i))/N.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace lowbit {

Tensor log_softmax(const Tensor& logits);
Tensor nll_loss(const Tensor& log_probs, const std::vector<int32_t>& targets);
Tensor cross_entropy(const Tensor& logits, const std::vector<int32_t>& targets);
// Index of the largest logit per row.
std::vector<int32_t> argmax_rows(const Tensor& logits);

}  // namespace lowbit
