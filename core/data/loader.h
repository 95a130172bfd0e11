// loader.h: DataLoader, which turns a Dataset into float batches [n, C, H, W]:
// seeded per-epoch shuffling, distributed sharding, augmentation, normalization
//   x = (pixel / 255 - mean[c]) / std[c]
// and parallel batch assembly (parallel_for over the batch items).
//
// Sharding (rank r of W ranks, options.batch_size = B is the GLOBAL batch, local b = B / W):
//  * training layout (contiguous_shard = false): every rank draws the same permutation P of
//    the epoch; step s covers P[s*B, s*B + R_s) with R_s = min(B, N - s*B), and rank r takes
//    P[s*B + r*R_s/W, s*B + (r+1)*R_s/W), i.e. [s*B + r*b, s*B + (r+1)*b) for full steps. So the
//    union of the ranks' step-s batches is exactly the 1-rank step-s batch and all ranks run the
//    same number of steps: N / B with drop_last (the partial global batch is dropped: each rank
//    sees (N / B) * b samples), ceil(N / B) without (last-step shares differ by at most one).
//  * evaluation layout (contiguous_shard = true, see LoaderOptions::evaluation): rank r takes the
//    contiguous shard P[r*N/W, (r+1)*N/W) and walks it in local batches of b; step counts may
//    then differ between ranks by one, so reduce metrics after the loop, not per step.
// Augmentation (random crop with zero padding in raw pixel space, i.e. padded pixels become
// (0 - mean) / std, then horizontal flip with probability 1/2) draws from a Generator seeded
// by (seed, epoch, dataset index), so it does not depend on thread count, rank or world size.
// The loader keeps a reference to the Dataset, which must outlive it.
#pragma once
#include <cstdint>
#include <vector>

#include "core/data/dataset.h"
#include "core/tensor.h"

namespace lowbit {

struct LoaderOptions {
  int64_t batch_size = 128;  // GLOBAL batch; must be a multiple of world_size
  bool shuffle = true;
  bool drop_last = true;
  uint64_t seed = 0;
  bool random_crop = false;
  int crop_padding = 4;
  bool horizontal_flip = false;
  int rank = 0;
  int world_size = 1;
  bool contiguous_shard = false;  // evaluation layout (see above)

  // No shuffle, no drop, no augmentation, contiguous shard per rank.
  static LoaderOptions evaluation(int64_t batch_size, int rank = 0, int world_size = 1);
};

struct Batch {
  Tensor images;                 // [n, C, H, W] float32, normalized
  std::vector<int32_t> labels;   // n
  std::vector<int64_t> indices;  // n dataset indices (which samples these are)
};

class DataLoader {
 public:
  // Throws lowbit::Error on bad options (batch not a multiple of world_size, rank out of range,
  // negative padding, drop_last with fewer samples than one global batch) or an invalid Dataset.
  DataLoader(const Dataset& dataset, LoaderOptions options);
  DataLoader(Dataset&&, LoaderOptions) = delete;  // the loader keeps a reference: no temporaries

  // Selects the epoch's permutation and augmentation stream (epoch 0 until called).
  void set_epoch(int64_t epoch);
  int64_t epoch() const { return epoch_; }
  int64_t steps() const { return steps_; }                 // this rank's steps per epoch
  int64_t local_batch_size() const { return local_batch_; }  // batch_size / world_size
  int64_t samples_per_epoch() const;                       // this rank's samples per epoch
  // Dataset indices of this rank's batch at `step` (0 <= step < steps()).
  std::vector<int64_t> step_indices(int64_t step) const;
  // Assembles this rank's batch at `step`; safe to call concurrently (const).
  Batch batch(int64_t step) const;
  const LoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return *dataset_; }

 private:
  void write_sample(int64_t index, float* out) const;

  const Dataset* dataset_;
  LoaderOptions options_;
  int64_t local_batch_ = 0;
  int64_t steps_ = 0;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;  // the epoch's permutation of [0, N)
  std::vector<float> lut_;      // [C][256]: normalized value of each pixel byte
};

// The permutation of [0, n) every rank draws for (seed, epoch): Fisher-Yates with a Generator.
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch);
// Seed of the per-sample augmentation Generator for (seed, epoch, dataset index).
uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index);

}  // namespace lowbit
