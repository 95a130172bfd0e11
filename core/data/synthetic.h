// synthetic.h: small deterministic datasets for fast tests, and writers that store any Dataset
// in each on-disk format load_dataset reads (IDX plain/gzip, CIFAR-10 binary, image folder).
// The synthetic data is learnable: class k's template is a bright Gaussian blob at angle
// 2*pi*k/K on a circle around the centre plus a bar whose orientation depends on k; each sample
// shifts it by up to +-1 pixel, scales it by a factor in [0.7, 1] and adds Gaussian noise.
// A small MLP separates the classes in a few dozen steps.
#pragma once
#include <cstdint>
#include <string>

#include "core/data/dataset.h"

namespace lowbit {

struct SyntheticOptions {
  int64_t train_size = 2000, test_size = 500;
  int64_t channels = 1, height = 28, width = 28;
  int64_t classes = 10;  // at most 256 (the formats store labels as bytes)
  uint64_t seed = 0;
  float noise = 0.15f;  // std of the additive noise, in [0, 1] pixel units
};

// One split; label of sample i is i % classes (balanced). Named "synthetic", class names
// "0".."K-1", mean/std computed from the train split. Same options -> same bytes.
Dataset make_synthetic_dataset(const SyntheticOptions& options, Split split);

// DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] for a 1-channel dataset (creates DIR).
void write_idx_split(const std::string& dir, const Dataset& ds, Split split, bool gzip);
// Train: spread over data_batch_1..5.bin (first files get the extra records); test: test_batch.bin.
// Also writes batches.meta.txt with the class names. Needs a 3x32x32 dataset.
void write_cifar10_split(const std::string& dir, const Dataset& ds, Split split);
// DIR/<class name>/<index, 5 digits>.<format> for format "png" or "bmp" ('/' in a class name
// becomes '_'). Note the folder loader numbers classes by sorted folder name.
void write_image_folder(const std::string& dir, const Dataset& ds, const std::string& format = "png");

// Writes both splits of make_synthetic_dataset as IDX files into DIR and returns "idx:DIR".
std::string write_synthetic_idx(const std::string& dir, const SyntheticOptions& options = {},
                                bool gzip = true);

}  // namespace lowbit
