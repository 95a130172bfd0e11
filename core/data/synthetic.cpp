// synthetic.cpp: synthetic class patterns and the dataset file writers.
#include "core/data/synthetic.h"

#include <stb/stb_image_write.h>  // implementation is in Debian's libstb
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/data/loader.h"
#include "core/error.h"
#include "core/random.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

constexpr double kPi = 3.14159265358979323846;

// Class template value in [0, 1] at (y, x).
double class_template(int64_t k, int64_t classes, int64_t c, double y, double x, int64_t h, int64_t w) {
  const double angle = 2.0 * kPi * static_cast<double>(k) / static_cast<double>(classes);
  const double cy = 0.5 * (h - 1) + 0.28 * h * std::sin(angle);
  const double cx = 0.5 * (w - 1) + 0.28 * w * std::cos(angle);
  const double sigma = std::max(1.0, h / 8.0);
  const double blob = std::exp(-((y - cy) * (y - cy) + (x - cx) * (x - cx)) / (2 * sigma * sigma));
  // A bar through the centre, oriented by class.
  const double theta = kPi * static_cast<double>(k) / static_cast<double>(classes);
  const double dist = std::abs((y - 0.5 * (h - 1)) * std::cos(theta) - (x - 0.5 * (w - 1)) * std::sin(theta));
  const double bar = dist < std::max(1.0, h / 14.0) ? 0.5 : 0.0;
  // Colour: a class-dependent weight per channel (all 1 for grayscale).
  const double tint = classes > 1 && c > 0 ? 0.55 + 0.45 * std::cos(angle + 2.0 * kPi * c / 3.0) : 1.0;
  return std::min(1.0, (blob + bar) * tint);
}

Dataset make_split(const SyntheticOptions& o, Split split) {
  LOWBIT_CHECK(o.classes >= 1 && o.classes <= 256, "synthetic dataset: classes must be in [1, 256], got ", o.classes);
  LOWBIT_CHECK(o.channels >= 1 && o.height >= 1 && o.width >= 1, "synthetic dataset: bad image shape ",
               o.channels, "x", o.height, "x", o.width);
  Dataset ds;
  ds.name = "synthetic";
  ds.channels = o.channels;
  ds.height = o.height;
  ds.width = o.width;
  const int64_t n = split == Split::Train ? o.train_size : o.test_size;
  LOWBIT_CHECK(n >= 0, "synthetic dataset: negative size ", n);
  ds.images.resize(static_cast<size_t>(n * ds.image_bytes()));
  ds.labels.resize(static_cast<size_t>(n));
  for (int64_t k = 0; k < o.classes; ++k) ds.class_names.push_back(std::to_string(k));
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<int32_t>(i % o.classes);
    ds.labels[i] = k;
    Generator gen(sample_seed(o.seed, split == Split::Train ? -1 : -2, i));
    const double sy = static_cast<double>(gen.below(3)) - 1.0, sx = static_cast<double>(gen.below(3)) - 1.0;
    const double scale = 0.7 + 0.3 * gen.uniform();
    uint8_t* img = ds.images.data() + i * ds.image_bytes();
    for (int64_t c = 0; c < o.channels; ++c)
      for (int64_t y = 0; y < o.height; ++y)
        for (int64_t x = 0; x < o.width; ++x) {
          const double v = scale * class_template(k, o.classes, c, y - sy, x - sx, o.height, o.width) +
                           o.noise * gen.normal();
          img[(c * o.height + y) * o.width + x] =
              static_cast<uint8_t>(std::clamp(std::lround(255.0 * v), 0l, 255l));
        }
  }
  return ds;
}

void write_file(const fs::path& path, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.string().c_str(), "wb");
    LOWBIT_CHECK(f != nullptr, "error writing ", path.string(), ": cannot open file");
    const int wrote = bytes.empty() ? 0 : gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    const int closed = gzclose(f);
    LOWBIT_CHECK(wrote == static_cast<int>(bytes.size()) && closed == Z_OK, "error writing ", path.string(),
                 ": gzip write failed");
  } else {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    LOWBIT_CHECK(out.good(), "error writing ", path.string());
  }
}

void put_u32_be(std::vector<uint8_t>& out, uint64_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

void make_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  LOWBIT_CHECK(!ec, "error writing ", dir, ": cannot create directory (", ec.message(), ")");
}

}  // namespace

Dataset make_synthetic_dataset(const SyntheticOptions& options, Split split) {
  Dataset train = make_split(options, Split::Train);
  const auto [mean, std] = channel_mean_std(train);
  Dataset ds = split == Split::Train ? std::move(train) : make_split(options, Split::Test);
  ds.mean = mean;
  ds.std = std;
  return ds;
}

void write_idx_split(const std::string& dir, const Dataset& ds, Split split, bool gzip) {
  LOWBIT_CHECK(ds.channels == 1, "write_idx_split: IDX holds 1-channel images, dataset ", ds.name, " has ",
               ds.channels);
  make_dir(dir);
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  const std::string ext = gzip ? ".gz" : "";
  std::vector<uint8_t> images;
  put_u32_be(images, 0x00000803);
  put_u32_be(images, static_cast<uint64_t>(ds.size()));
  put_u32_be(images, static_cast<uint64_t>(ds.height));
  put_u32_be(images, static_cast<uint64_t>(ds.width));
  images.insert(images.end(), ds.images.begin(), ds.images.end());
  write_file(fs::path(dir) / (prefix + "-images-idx3-ubyte" + ext), images, gzip);
  std::vector<uint8_t> labels;
  put_u32_be(labels, 0x00000801);
  put_u32_be(labels, static_cast<uint64_t>(ds.size()));
  for (int32_t l : ds.labels) labels.push_back(static_cast<uint8_t>(l));
  write_file(fs::path(dir) / (prefix + "-labels-idx1-ubyte" + ext), labels, gzip);
}

void write_cifar10_split(const std::string& dir, const Dataset& ds, Split split) {
  LOWBIT_CHECK(ds.channels == 3 && ds.height == 32 && ds.width == 32,
               "write_cifar10_split: CIFAR-10 holds 3x32x32 images, dataset ", ds.name, " has ", ds.channels,
               "x", ds.height, "x", ds.width);
  make_dir(dir);
  const int files = split == Split::Train ? 5 : 1;
  const int64_t n = ds.size();
  for (int f = 0; f < files; ++f) {
    // File f gets records [f*n/files, (f+1)*n/files).
    std::vector<uint8_t> bytes;
    for (int64_t i = f * n / files; i < (f + 1) * n / files; ++i) {
      bytes.push_back(static_cast<uint8_t>(ds.labels[i]));
      bytes.insert(bytes.end(), ds.image(i), ds.image(i) + ds.image_bytes());
    }
    const std::string name = split == Split::Train ? "data_batch_" + std::to_string(f + 1) + ".bin"
                                                   : std::string("test_batch.bin");
    write_file(fs::path(dir) / name, bytes, false);
  }
  std::ofstream meta(fs::path(dir) / "batches.meta.txt");
  for (const std::string& name : ds.class_names) meta << name << "\n";
  meta << "\n";
  LOWBIT_CHECK(meta.good(), "error writing ", (fs::path(dir) / "batches.meta.txt").string());
}

void write_image_folder(const std::string& dir, const Dataset& ds, const std::string& format) {
  LOWBIT_CHECK(format == "png" || format == "bmp", "write_image_folder: format must be png or bmp, got \"",
               format, "\"");
  LOWBIT_CHECK(ds.channels == 1 || ds.channels == 3 || ds.channels == 4,
               "write_image_folder: images need 1, 3 or 4 channels, dataset ", ds.name, " has ", ds.channels);
  const int64_t plane = ds.height * ds.width;
  std::vector<uint8_t> hwc(static_cast<size_t>(ds.image_bytes()));
  for (int64_t i = 0; i < ds.size(); ++i) {
    std::string cls = ds.class_names.at(static_cast<size_t>(ds.labels[i]));
    std::replace(cls.begin(), cls.end(), '/', '_');
    make_dir((fs::path(dir) / cls).string());
    char file[32];
    std::snprintf(file, sizeof file, "%05lld.%s", static_cast<long long>(i), format.c_str());
    const std::string path = (fs::path(dir) / cls / file).string();
    for (int64_t p = 0; p < plane; ++p)  // CHW -> HWC
      for (int64_t c = 0; c < ds.channels; ++c) hwc[p * ds.channels + c] = ds.image(i)[c * plane + p];
    const int w = static_cast<int>(ds.width), h = static_cast<int>(ds.height), comp = static_cast<int>(ds.channels);
    const int ok = format == "png" ? stbi_write_png(path.c_str(), w, h, comp, hwc.data(), w * comp)
                                   : stbi_write_bmp(path.c_str(), w, h, comp, hwc.data());
    LOWBIT_CHECK(ok != 0, "error writing ", path, ": stb_image_write failed");
  }
}

std::string write_synthetic_idx(const std::string& dir, const SyntheticOptions& options, bool gzip) {
  write_idx_split(dir, make_synthetic_dataset(options, Split::Train), Split::Train, gzip);
  write_idx_split(dir, make_synthetic_dataset(options, Split::Test), Split::Test, gzip);
  return "idx:" + dir;
}

}  // namespace lowbit
