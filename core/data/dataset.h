// dataset.h: Dataset (one split of an image-classification dataset, decoded into memory as
// uint8) and load_dataset(spec, split), which parses the dataset spec forms:
//   fashion-mnist            IDX files in /usr/share/datasets/fashion-mnist (Debian's
//                            dataset-fashion-mnist); fashion-mnist:DIR reads them from DIR
//   mnist:DIR, idx:DIR       IDX files train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
//                            t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]
//   cifar10:DIR              binary batches data_batch_1..5.bin, test_batch.bin (+ batches.meta.txt)
//   folder:DIR               one subfolder per class of PNG/JPEG/BMP images (see image_folder.h)
// Images stay uint8 (Fashion-MNIST train is 47 MB); the DataLoader converts a batch to float
// with   x = (pixel / 255 - mean[c]) / std[c].
// mean/std: fixed published values for fashion-mnist (0.2860, 0.3530), mnist (0.1307, 0.3081)
// and cifar10 (0.4914 0.4822 0.4465 / 0.2470 0.2435 0.2616); computed from the TRAIN split for
// idx: and folder: (so loading their Test split also reads the train split).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lowbit {

enum class Split { Train, Test };
const char* split_name(Split split);  // "train" / "test"

struct Dataset {
  std::string name;  // "fashion-mnist", "mnist", "idx", "cifar10", "folder"
  int64_t channels = 0, height = 0, width = 0;
  std::vector<uint8_t> images;  // N*C*H*W, sample-major, each sample CHW
  std::vector<int32_t> labels;  // N, each in [0, num_classes())
  std::vector<std::string> class_names;
  std::vector<float> mean, std;  // per channel, in [0, 1] pixel units
  std::vector<std::string> skipped;  // folder: with DatasetOptions::skip_bad_images, "FILE: why" per image left out

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
  int64_t image_bytes() const { return channels * height * width; }  // C*H*W
  const uint8_t* image(int64_t i) const { return images.data() + i * image_bytes(); }
  // Throws unless images/labels/mean/std sizes agree and every label < num_classes().
  void validate() const;
};

struct DatasetOptions {
  // folder:DIR only: leave out the images that do not decode (listed in Dataset::skipped) instead
  // of throwing on the first one. The other formats are whole files: a bad one always throws.
  bool skip_bad_images = false;
};

// Parses `spec` (forms above) and loads one split. Throws lowbit::Error naming the file and
// what was expected on a missing/corrupt/truncated file, or listing the valid forms on a bad spec.
Dataset load_dataset(const std::string& spec, Split split, const DatasetOptions& options = {});

// Per-channel population mean and std of pixel/255 over the whole dataset (double accumulation).
std::pair<std::vector<float>, std::vector<float>> channel_mean_std(const Dataset& ds);

// Class names of the two built-in 10-class datasets.
const std::vector<std::string>& fashion_mnist_class_names();
const std::vector<std::string>& cifar10_class_names();

}  // namespace lowbit
