// dataset.cpp: dataset spec parsing, per-dataset defaults (class names, mean/std), validation.
#include "core/data/dataset.h"

#include <cmath>

#include "core/data/cifar10.h"
#include "core/data/idx.h"
#include "core/data/image_folder.h"
#include "core/error.h"

namespace lowbit {

namespace {

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
constexpr const char* kSpecForms =
    "fashion-mnist, fashion-mnist:DIR, mnist:DIR, idx:DIR, cifar10:DIR, folder:DIR";

std::vector<std::string> digit_names(int64_t n) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < n; ++i) names.push_back(std::to_string(i));
  return names;
}

// fashion-mnist / mnist: 10 classes and published normalization constants.
Dataset load_known_idx(const std::string& name, const std::string& dir, Split split) {
  Dataset ds = read_idx_split(dir, split, 10);
  ds.name = name;
  if (name == "fashion-mnist") {
    ds.class_names = fashion_mnist_class_names();
    ds.mean = {0.2860f};
    ds.std = {0.3530f};
  } else {
    ds.class_names = digit_names(10);
    ds.mean = {0.1307f};
    ds.std = {0.3081f};
  }
  return ds;
}

// idx:DIR: class count = max train label + 1, mean/std from the train split.
Dataset load_generic_idx(const std::string& dir, Split split) {
  Dataset train = read_idx_split(dir, Split::Train, 0);
  int32_t max_label = -1;
  for (int32_t l : train.labels) max_label = std::max(max_label, l);
  const int64_t classes = max_label + 1;
  const auto [mean, std] = channel_mean_std(train);
  Dataset ds = split == Split::Train ? std::move(train) : read_idx_split(dir, Split::Test, classes);
  ds.name = "idx";
  ds.class_names = digit_names(classes);
  ds.mean = mean;
  ds.std = std;
  return ds;
}

}  // namespace

const char* split_name(Split split) { return split == Split::Train ? "train" : "test"; }

void Dataset::validate() const {
  LOWBIT_CHECK(channels >= 1 && height >= 1 && width >= 1, "dataset ", name, ": bad image shape ",
               channels, "x", height, "x", width);
  LOWBIT_CHECK(images.size() == labels.size() * static_cast<size_t>(image_bytes()), "dataset ", name,
               ": ", images.size(), " image bytes, expected ", labels.size(), " x ", image_bytes());
  LOWBIT_CHECK(mean.size() == static_cast<size_t>(channels) && std.size() == static_cast<size_t>(channels),
               "dataset ", name, ": mean/std have ", mean.size(), "/", std.size(), " entries, expected ",
               channels, " (one per channel)");
  for (size_t i = 0; i < labels.size(); ++i)
    LOWBIT_CHECK(labels[i] >= 0 && labels[i] < num_classes(), "dataset ", name, ": label ", labels[i],
                 " at index ", i, " is out of range: expected < ", num_classes(), " classes");
}

std::pair<std::vector<float>, std::vector<float>> channel_mean_std(const Dataset& ds) {
  const int64_t plane = ds.height * ds.width;
  std::vector<float> mean(ds.channels), std(ds.channels);
  for (int64_t c = 0; c < ds.channels; ++c) {
    // Integer histogram first: exact, and independent of summation order.
    std::vector<uint64_t> hist(256, 0);
    for (int64_t i = 0; i < ds.size(); ++i) {
      const uint8_t* p = ds.image(i) + c * plane;
      for (int64_t k = 0; k < plane; ++k) ++hist[p[k]];
    }
    double count = 0, sum = 0, sum_sq = 0;
    for (int v = 0; v < 256; ++v) {
      const double x = v / 255.0, n = static_cast<double>(hist[v]);
      count += n;
      sum += n * x;
      sum_sq += n * x * x;
    }
    const double m = count > 0 ? sum / count : 0.0;
    const double var = count > 0 ? std::max(0.0, sum_sq / count - m * m) : 0.0;
    mean[c] = static_cast<float>(m);
    // A constant channel gets std 1 so normalization never divides by zero.
    std[c] = var > 1e-12 ? static_cast<float>(std::sqrt(var)) : 1.0f;
  }
  return {mean, std};
}

Dataset load_dataset(const std::string& spec, Split split, const DatasetOptions& options) {
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const std::string dir = colon == std::string::npos ? std::string() : spec.substr(colon + 1);
  const bool known = kind == "fashion-mnist" || kind == "mnist" || kind == "idx" || kind == "cifar10" ||
                     kind == "folder";
  LOWBIT_CHECK(known, "unknown dataset spec \"", spec, "\": expected one of ", kSpecForms);
  LOWBIT_CHECK(kind == "fashion-mnist" || !dir.empty(), "dataset spec \"", spec,
               "\" needs a directory: expected ", kind, ":DIR (valid forms: ", kSpecForms, ")");
  LOWBIT_CHECK(colon == std::string::npos || !dir.empty(), "dataset spec \"", spec,
               "\" has an empty directory: expected ", kind, ":DIR");
  Dataset ds;
  if (kind == "fashion-mnist") ds = load_known_idx(kind, dir.empty() ? kFashionMnistDir : dir, split);
  else if (kind == "mnist") ds = load_known_idx(kind, dir, split);
  else if (kind == "idx") ds = load_generic_idx(dir, split);
  else if (kind == "cifar10") ds = read_cifar10_split(dir, split);
  else ds = read_image_folder(dir, split, options.skip_bad_images);
  ds.validate();
  return ds;
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  return names;
}

const std::vector<std::string>& cifar10_class_names() {
  static const std::vector<std::string> names = {"airplane", "automobile", "bird", "cat", "deer",
                                                 "dog", "frog", "horse", "ship", "truck"};
  return names;
}

}  // namespace lowbit
