// deterministic_sum.h: the one way lowbit sums over the batch (weight/bias gradients of conv and
// linear, BatchNorm statistics, quantizer-parameter gradients), so that the result depends neither
// on the thread count nor on how a global batch is split across data-parallel ranks.
//
//   leaves:  images [l*R, min((l+1)*R, N)) for l = 0 .. ceil(N/R)-1, R = kReduceChunkImages;
//            each leaf is computed by one task, in a fixed order, from its own images only;
//   tree:    leaves [lo, hi) combine as tree(lo, mid) + tree(mid, hi), mid = lo + (hi-lo)/2.
//
// Why: float addition is not associative, and quantization turns a last-bit difference into a
// whole code flip. With fixed leaves and a fixed tree, --threads only decides which task computes
// which leaf. When 2 ranks each hold half of a global batch whose halves are whole leaves (local
// batch a multiple of R), each rank's tree is exactly one subtree of the single process's root,
// and the gradient allreduce's a + b is the root's last addition: bit-identical to one process.
// The tree must run in the type the allreduce adds in (float for gradients, double for the
// sync-BN sums), or the root's rounding would differ.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/threading.h"

namespace lowbit {

// Images per leaf. A constant, never derived from the thread count; 8 divides every local batch
// that is a multiple of 8 (data-parallel runs should use local batches that are).
constexpr int64_t kReduceChunkImages = 8;

inline int64_t reduce_leaves(int64_t n_images) {
  return std::max<int64_t>(1, (n_images + kReduceChunkImages - 1) / kReduceChunkImages);
}

// Within one plane of a leaf: sums over j < n of term(j) (one or two accumulators) kept in
// kLanes fixed lanes (j goes to lane j % kLanes) and combined by a fixed pairwise tree, so the
// compiler can vectorise it (a single running float sum is a serial chain of dependent adds)
// while the result stays a function of the data alone.
constexpr int kLanes = 16;

inline float combine_lanes(float* lane) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) lane[l] += lane[l + w];
  return lane[0];
}

// term(j, a, b): adds plane element j's contributions to a and b.
template <class Term>
inline void lane_sums(int64_t n, float& sum_a, float& sum_b, Term term) {
  float a[kLanes] = {}, b[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) term(j + l, a[l], b[l]);
  for (int l = 0; j < n; ++j, ++l) term(j, a[l], b[l]);
  sum_a = combine_lanes(a);
  sum_b = combine_lanes(b);
}

// parts holds `leaves` rows of `width` values; sums them by the fixed pairwise tree into row 0.
template <class T>
void tree_sum_rows(T* parts, int64_t leaves, int64_t width) {
  if (leaves <= 1) return;
  const int64_t mid = leaves / 2;
  tree_sum_rows(parts, mid, width);
  tree_sum_rows(parts + mid * width, leaves - mid, width);
  T* __restrict dst = parts;
  const T* __restrict src = parts + mid * width;
  for (int64_t i = 0; i < width; ++i) dst[i] += src[i];
}

// Sum over the batch of `width` values: leaf(begin, end, acc) adds images [begin, end) into acc
// (zero on entry, `width` values). Leaves run in parallel; the tree combines them in T.
template <class T, class Leaf>
std::vector<T> batch_sum(int64_t n_images, int64_t width, Leaf&& leaf) {
  const int64_t leaves = reduce_leaves(n_images);
  std::vector<T> parts(static_cast<size_t>(leaves * width), T(0));
  parallel_for(0, leaves, 1, [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; ++l)
      leaf(l * kReduceChunkImages, std::min(n_images, (l + 1) * kReduceChunkImages), parts.data() + l * width);
  });
  tree_sum_rows(parts.data(), leaves, width);
  parts.resize(static_cast<size_t>(width));
  return parts;
}

// The same over the elements of a tensor [N, ...] of `numel` values whose dimension 0 is the batch
// (a quantizer's input): leaf(begin, end, acc) adds elements [begin, end), which cover whole images.
template <class T, class Leaf>
std::vector<T> batch_sum_elements(int64_t numel, int64_t n_images, int64_t width, Leaf&& leaf) {
  const int64_t per_image = n_images > 0 ? numel / n_images : 0;
  return batch_sum<T>(n_images, width,
                      [&](int64_t i0, int64_t i1, T* acc) { leaf(i0 * per_image, i1 * per_image, acc); });
}

}  // namespace lowbit
