// test_deterministic_sum.cpp: the fixed chunk tree of core/deterministic_sum.h and the batch
// reductions built on it. Two properties, checked bit for bit:
//  (a) --threads does not change any gradient (conv2d, linear, batch_norm);
//  (b) splitting the batch at a chunk boundary into two halves and adding the halves' gradients
//      (what the 2-rank allreduce does) gives exactly the full-batch gradient (conv2d, linear).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <functional>
#include <vector>

#include "core/deterministic_sum.h"
#include "core/ops_conv.h"
#include "core/ops_matmul.h"
#include "core/ops_norm.h"
#include "core/random.h"
#include "core/threading.h"

using namespace lowbit;

namespace {

// Rows [r0, r1) of dimension 0 as a new tensor.
Tensor rows(const Tensor& t, int64_t r0, int64_t r1) {
  Shape s = t.shape();
  const int64_t per = t.numel() / s[0];
  s[0] = r1 - r0;
  return Tensor::from_vector(s, std::vector<float>(t.data() + r0 * per, t.data() + r1 * per));
}

// The gradients of `params` (fresh copies) for op(x, params) seeded with gy.
std::vector<std::vector<float>> grads(const std::function<Tensor(const Tensor&, const std::vector<Tensor>&)>& op,
                                      const Tensor& x, const std::vector<Tensor>& params, const Tensor& gy) {
  std::vector<Tensor> p;
  for (const Tensor& t : params) p.push_back(t.clone().set_requires_grad(true));
  op(x.clone().set_requires_grad(true), p).backward(gy);
  std::vector<std::vector<float>> out;
  for (const Tensor& t : p) out.push_back(t.grad().to_vector());
  return out;
}

// (a) the same gradients at 1, 2 and 4 threads.
void check_thread_invariant(const std::function<Tensor(const Tensor&, const std::vector<Tensor>&)>& op,
                            const Tensor& x, const std::vector<Tensor>& params, const Tensor& gy) {
  set_num_threads(1);
  const auto ref = grads(op, x, params, gy);
  for (int threads : {2, 4}) {
    set_num_threads(threads);
    CHECK(grads(op, x, params, gy) == ref);
  }
  set_num_threads(1);
}

// (b) the full batch's gradients equal the halves' gradients added (float), the batch split at
// half = a multiple of kReduceChunkImages.
void check_split_invariant(const std::function<Tensor(const Tensor&, const std::vector<Tensor>&)>& op,
                           const Tensor& x, const std::vector<Tensor>& params, const Tensor& gy) {
  const int64_t n = x.size(0), half = n / 2;
  REQUIRE(half % kReduceChunkImages == 0);
  const auto full = grads(op, x, params, gy);
  const auto a = grads(op, rows(x, 0, half), params, rows(gy, 0, half));
  const auto b = grads(op, rows(x, half, n), params, rows(gy, half, n));
  for (size_t i = 0; i < full.size(); ++i) {
    std::vector<float> sum(full[i].size());
    for (size_t j = 0; j < sum.size(); ++j) sum[j] = a[i][j] + b[i][j];
    CHECK(sum == full[i]);
  }
}

}  // namespace

TEST_CASE("tree_sum_rows adds leaves in the documented pairwise order") {
  // 5 leaves: (l0 + l1) + (l2 + (l3 + l4)); values chosen so that any other order rounds differently.
  std::vector<float> parts = {1e8f, 3.f, -1e8f, 5.f, 7.f};
  const float expected = (1e8f + 3.f) + (-1e8f + (5.f + 7.f));
  tree_sum_rows(parts.data(), 5, 1);
  CHECK(parts[0] == expected);
  CHECK(reduce_leaves(0) == 1);
  CHECK(reduce_leaves(kReduceChunkImages) == 1);
  CHECK(reduce_leaves(kReduceChunkImages + 1) == 2);
}

TEST_CASE("batch_sum does not depend on the thread count") {
  Generator gen(5);
  const Tensor x = Tensor::randn({37, 100}, gen);  // a partial last leaf too
  auto run = [&] {
    return batch_sum<float>(37, 3, [&](int64_t i0, int64_t i1, float* acc) {
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = 0; j < 100; ++j) acc[j % 3] += x.data()[i * 100 + j] * (1.f + 0.1f * j);
    });
  };
  set_num_threads(1);
  const auto ref = run();
  for (int threads : {2, 4}) {
    set_num_threads(threads);
    CHECK(run() == ref);
  }
  set_num_threads(1);
}

TEST_CASE("conv2d weight and bias gradients: thread- and split-invariant") {
  Generator gen(11);
  const Tensor x = Tensor::randn({32, 3, 9, 9}, gen), w = Tensor::randn({5, 3, 3, 3}, gen),
               b = Tensor::randn({5}, gen), gy = Tensor::randn({32, 5, 9, 9}, gen);
  auto op = [](const Tensor& in, const std::vector<Tensor>& p) { return conv2d(in, p[0], p[1], {1, 1, 1, 1}); };
  check_thread_invariant(op, x, {w, b}, gy);
  check_split_invariant(op, x, {w, b}, gy);
}

TEST_CASE("linear weight and bias gradients: thread- and split-invariant") {
  Generator gen(12);
  const Tensor x = Tensor::randn({48, 70}, gen), w = Tensor::randn({9, 70}, gen), b = Tensor::randn({9}, gen),
               gy = Tensor::randn({48, 9}, gen);
  auto op = [](const Tensor& in, const std::vector<Tensor>& p) { return linear(in, p[0], p[1]); };
  check_thread_invariant(op, x, {w, b}, gy);
  check_split_invariant(op, x, {w, b}, gy);
}

TEST_CASE("batch_norm statistics and gradients: thread-invariant") {
  Generator gen(13);
  const Tensor x = Tensor::randn({40, 6, 5, 5}, gen), gamma = Tensor::randn({6}, gen),
               beta = Tensor::randn({6}, gen), gy = Tensor::randn({40, 6, 5, 5}, gen);
  for (bool relu : {false, true}) {
    auto op = [relu](const Tensor& in, const std::vector<Tensor>& p) {
      BatchNormOptions o;
      o.fused_relu = relu;
      return batch_norm(in, p[0], p[1], Tensor::zeros({6}), Tensor::ones({6}), o);
    };
    check_thread_invariant(op, x, {gamma, beta}, gy);
  }
}
