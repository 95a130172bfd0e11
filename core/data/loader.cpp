// loader.cpp: DataLoader (shuffle, shard layout, augmentation, parallel batch assembly).
#include "core/data/loader.h"

#include <numeric>

#include "core/error.h"
#include "core/pixel_norm.h"
#include "core/random.h"
#include "core/threading.h"

namespace lowbit {

namespace {

// splitmix64's finalizer: a bijective 64-bit mix, so distinct inputs give distinct seeds.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t combine(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b)); }

// Domain tags keep the shuffle and augmentation streams apart for the same (seed, epoch).
constexpr uint64_t kShuffleTag = 0x73687566666c65ULL;  // "shuffle"
constexpr uint64_t kAugmentTag = 0x6175676d656e74ULL;  // "augment"

}  // namespace

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  Generator gen(combine(combine(kShuffleTag, seed), static_cast<uint64_t>(epoch)));
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(gen.below(static_cast<uint64_t>(i + 1)));
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return combine(combine(combine(kAugmentTag, seed), static_cast<uint64_t>(epoch)),
                 static_cast<uint64_t>(index));
}

LoaderOptions LoaderOptions::evaluation(int64_t batch_size, int rank, int world_size) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = false;
  o.drop_last = false;
  o.rank = rank;
  o.world_size = world_size;
  o.contiguous_shard = true;
  return o;
}

DataLoader::DataLoader(const Dataset& dataset, LoaderOptions options)
    : dataset_(&dataset), options_(options) {
  dataset.validate();
  const LoaderOptions& o = options_;
  LOWBIT_CHECK(o.world_size >= 1, "data loader: world_size must be >= 1, got ", o.world_size);
  LOWBIT_CHECK(o.rank >= 0 && o.rank < o.world_size, "data loader: rank ", o.rank,
               " out of range: expected 0 <= rank < world_size ", o.world_size);
  LOWBIT_CHECK(o.batch_size >= 1, "data loader: batch size must be >= 1, got ", o.batch_size);
  LOWBIT_CHECK(o.batch_size % o.world_size == 0, "data loader: global batch size ", o.batch_size,
               " is not a multiple of world_size ", o.world_size,
               " (each rank's local batch is batch / world_size)");
  LOWBIT_CHECK(o.crop_padding >= 0, "data loader: crop padding must be >= 0, got ", o.crop_padding);
  local_batch_ = o.batch_size / o.world_size;
  const int64_t n = dataset.size();
  if (o.contiguous_shard) {
    const int64_t shard = (o.rank + 1) * n / o.world_size - o.rank * n / o.world_size;
    steps_ = o.drop_last ? shard / local_batch_ : (shard + local_batch_ - 1) / local_batch_;
  } else {
    steps_ = o.drop_last ? n / o.batch_size : (n + o.batch_size - 1) / o.batch_size;
    LOWBIT_CHECK(n == 0 || steps_ > 0, "data loader: dataset ", dataset.name, " has ", n,
                 " samples, fewer than one global batch of ", o.batch_size,
                 " with drop_last (expected batch size <= ", n, ")");
  }
  lut_.resize(static_cast<size_t>(dataset.channels) * 256);
  for (int64_t c = 0; c < dataset.channels; ++c)
    for (int v = 0; v < 256; ++v)
      lut_[c * 256 + v] = normalize_pixel(static_cast<uint8_t>(v), dataset.mean[c], dataset.std[c]);
  set_epoch(0);
}

void DataLoader::set_epoch(int64_t epoch) {
  epoch_ = epoch;
  const int64_t n = dataset_->size();
  if (options_.shuffle) {
    order_ = epoch_permutation(n, options_.seed, epoch);
  } else {
    order_.resize(static_cast<size_t>(n));
    std::iota(order_.begin(), order_.end(), int64_t{0});
  }
}

std::vector<int64_t> DataLoader::step_indices(int64_t step) const {
  LOWBIT_CHECK(step >= 0 && step < steps_, "data loader: step ", step, " out of range: expected 0 <= step < ",
               steps_);
  const int64_t n = dataset_->size();
  const int64_t r = options_.rank, w = options_.world_size;
  int64_t begin = 0, end = 0;
  if (options_.contiguous_shard) {
    const int64_t lo = r * n / w, hi = (r + 1) * n / w;
    begin = lo + step * local_batch_;
    end = std::min(begin + local_batch_, hi);
  } else {
    const int64_t start = step * options_.batch_size;
    const int64_t len = std::min(options_.batch_size, n - start);  // R_s
    begin = start + r * len / w;
    end = start + (r + 1) * len / w;
  }
  return {order_.begin() + begin, order_.begin() + end};
}

int64_t DataLoader::samples_per_epoch() const {
  int64_t total = 0;
  if (steps_ > 0) total = (steps_ - 1) * local_batch_ + static_cast<int64_t>(step_indices(steps_ - 1).size());
  return total;
}

void DataLoader::write_sample(int64_t index, float* out) const {
  const Dataset& ds = *dataset_;
  const int64_t C = ds.channels, H = ds.height, W = ds.width, plane = H * W;
  const uint8_t* src = ds.image(index);
  if (!options_.random_crop && !options_.horizontal_flip) {
    for (int64_t c = 0; c < C; ++c) {
      const float* lut = lut_.data() + c * 256;
      for (int64_t p = 0; p < plane; ++p) out[c * plane + p] = lut[src[c * plane + p]];
    }
    return;
  }
  Generator gen(sample_seed(options_.seed, epoch_, index));
  int64_t dy = 0, dx = 0;  // shift of the crop window relative to the unpadded image
  if (options_.random_crop) {
    const int64_t pad = options_.crop_padding;
    dy = static_cast<int64_t>(gen.below(static_cast<uint64_t>(2 * pad + 1))) - pad;
    dx = static_cast<int64_t>(gen.below(static_cast<uint64_t>(2 * pad + 1))) - pad;
  }
  const bool flip = options_.horizontal_flip && gen.uniform() < 0.5f;
  for (int64_t c = 0; c < C; ++c) {
    const float* lut = lut_.data() + c * 256;
    const float zero = lut[0];  // a padded pixel is raw 0
    for (int64_t y = 0; y < H; ++y) {
      const int64_t sy = y + dy;
      float* row = out + c * plane + y * W;
      if (sy < 0 || sy >= H) {
        for (int64_t x = 0; x < W; ++x) row[x] = zero;
        continue;
      }
      const uint8_t* srow = src + c * plane + sy * W;
      for (int64_t x = 0; x < W; ++x) {
        const int64_t sx = (flip ? W - 1 - x : x) + dx;  // flip the cropped window
        row[x] = (sx < 0 || sx >= W) ? zero : lut[srow[sx]];
      }
    }
  }
}

Batch DataLoader::batch(int64_t step) const {
  Batch b;
  b.indices = step_indices(step);
  const Dataset& ds = *dataset_;
  const auto n = static_cast<int64_t>(b.indices.size());
  const int64_t item = ds.image_bytes();
  b.images = Tensor::empty({n, ds.channels, ds.height, ds.width});
  b.labels.resize(static_cast<size_t>(n));
  float* out = b.images.data();
  // Items are independent, so the result does not depend on the thread count.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, item));
  parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      b.labels[i] = ds.labels[b.indices[i]];
      write_sample(b.indices[i], out + i * item);
    }
  });
  return b;
}

}  // namespace lowbit
