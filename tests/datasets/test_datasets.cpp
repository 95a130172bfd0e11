// test_datasets.cpp: every dataset format loads from files written into a temp dir (IDX gz and
// plain, CIFAR-10 binary, PNG/BMP folders with resize), the real Fashion-MNIST when installed,
// DataLoader shuffling/sharding/augmentation/normalization, and the error messages.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <stb/stb_image_write.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/data/cifar10.h"
#include "core/data/dataset.h"
#include "core/data/image_folder.h"
#include "core/data/loader.h"
#include "core/data/synthetic.h"
#include "core/error.h"
#include "core/threading.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed on scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("lowbit_test_datasets_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// The message of the lowbit::Error that `f` throws ("" if none is thrown: the CHECKs then fail).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

SyntheticOptions small_options(int64_t train, int64_t test, int64_t c, int64_t h, int64_t w) {
  SyntheticOptions o;
  o.train_size = train;
  o.test_size = test;
  o.channels = c;
  o.height = h;
  o.width = w;
  return o;
}

std::vector<uint8_t> be32(uint32_t v) {
  return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    if (!bytes.empty()) gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
}

// An IDX image file header + `payload` bytes.
std::vector<uint8_t> idx_images(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols, size_t payload) {
  std::vector<uint8_t> out;
  for (uint32_t v : {magic, n, rows, cols}) {
    auto b = be32(v);
    out.insert(out.end(), b.begin(), b.end());
  }
  out.resize(out.size() + payload, 7);
  return out;
}

std::vector<uint8_t> idx_labels(uint32_t n, uint8_t value = 1) {
  std::vector<uint8_t> out;
  for (uint32_t v : {0x00000801u, n}) {
    auto b = be32(v);
    out.insert(out.end(), b.begin(), b.end());
  }
  out.resize(out.size() + n, value);
  return out;
}

std::vector<float> tensor_values(const Tensor& t) { return t.to_vector(); }

// A hand-built dataset: image i has pixel (c, y, x) = (i * 7 + c * 31 + y * 5 + x * 3) % 256.
Dataset pattern_dataset(int64_t n, int64_t c, int64_t h, int64_t w, int64_t classes = 4) {
  Dataset ds;
  ds.name = "pattern";
  ds.channels = c;
  ds.height = h;
  ds.width = w;
  for (int64_t k = 0; k < classes; ++k) ds.class_names.push_back(std::to_string(k) + "c");
  for (int64_t i = 0; i < n; ++i) {
    ds.labels.push_back(static_cast<int32_t>(i % classes));
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) ds.images.push_back(static_cast<uint8_t>((i * 7 + ch * 31 + y * 5 + x * 3) % 256));
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    ds.mean.push_back(0.25f + 0.1f * static_cast<float>(ch));
    ds.std.push_back(0.5f - 0.1f * static_cast<float>(ch));
  }
  return ds;
}

float normalized(const Dataset& ds, int64_t c, uint8_t v) {
  return (static_cast<float>(v) / 255.0f - ds.mean[c]) / ds.std[c];
}

void write_png_gray(const std::string& path, int w, int h, uint8_t value) {
  std::vector<uint8_t> px(static_cast<size_t>(w * h), value);
  REQUIRE(stbi_write_png(path.c_str(), w, h, 1, px.data(), w) != 0);
}

void write_png_rgb(const std::string& path, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  std::vector<uint8_t> px;
  for (int i = 0; i < w * h; ++i) px.insert(px.end(), {r, g, b});
  REQUIRE(stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3) != 0);
}

// A 16-bit grayscale PNG (stb_image_write has none): signature, IHDR, one zlib IDAT, IEND.
void write_png_gray16(const std::string& path, int w, int h, uint16_t value) {
  auto be32 = [](std::string& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
  };
  auto chunk = [&](std::string& out, const char* type, const std::string& data) {
    be32(out, static_cast<uint32_t>(data.size()));
    const std::string body = type + data;
    out += body;
    be32(out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
  };
  std::string ihdr;
  be32(ihdr, static_cast<uint32_t>(w));
  be32(ihdr, static_cast<uint32_t>(h));
  ihdr += std::string{16, 0, 0, 0, 0};  // bit depth 16, gray, deflate, no filter, no interlace
  std::string raw;
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);  // filter: none
    for (int x = 0; x < w; ++x) raw += {static_cast<char>(value >> 8), static_cast<char>(value & 0xff)};
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  REQUIRE(compress(reinterpret_cast<Bytef*>(packed.data()), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
                   static_cast<uLong>(raw.size())) == Z_OK);
  packed.resize(packed_size);
  std::string png = "\x89PNG\r\n\x1a\n";
  chunk(png, "IHDR", ihdr);
  chunk(png, "IDAT", packed);
  chunk(png, "IEND", "");
  std::ofstream(path, std::ios::binary) << png;
}

}  // namespace

// ---------------------------------------------------------------- IDX

TEST_CASE("idx: gzipped and plain files load the bytes that were written") {
  const SyntheticOptions o = small_options(37, 13, 1, 7, 5);  // non-square on purpose
  const Dataset train = make_synthetic_dataset(o, Split::Train);
  const Dataset test = make_synthetic_dataset(o, Split::Test);
  for (bool gzip : {true, false}) {
    CAPTURE(gzip);
    TempDir dir;
    write_idx_split(dir.str(), train, Split::Train, gzip);
    write_idx_split(dir.str(), test, Split::Test, gzip);
    CHECK(fs::exists(dir / (gzip ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte")));
    const Dataset a = load_dataset("idx:" + dir.str(), Split::Train);
    const Dataset b = load_dataset("idx:" + dir.str(), Split::Test);
    CHECK(a.name == "idx");
    CHECK(a.size() == 37);
    CHECK(b.size() == 13);
    CHECK(a.channels == 1);
    CHECK(a.height == 7);
    CHECK(a.width == 5);
    CHECK(a.images == train.images);
    CHECK(a.labels == train.labels);
    CHECK(b.images == test.images);
    CHECK(b.labels == test.labels);
    CHECK(a.num_classes() == 10);
    CHECK(b.num_classes() == 10);
    // idx: normalizes with the TRAIN split's statistics, for both splits.
    const auto [mean, std] = channel_mean_std(train);
    CHECK(a.mean == mean);
    CHECK(b.mean == mean);
    CHECK(b.std == std);
  }
}

TEST_CASE("mnist:DIR and fashion-mnist:DIR use the fixed normalization and class names") {
  TempDir dir;
  const SyntheticOptions o = small_options(20, 10, 1, 28, 28);
  write_idx_split(dir.str(), make_synthetic_dataset(o, Split::Train), Split::Train, true);
  write_idx_split(dir.str(), make_synthetic_dataset(o, Split::Test), Split::Test, false);  // mixed is fine
  const Dataset m = load_dataset("mnist:" + dir.str(), Split::Test);
  CHECK(m.name == "mnist");
  CHECK(m.mean == std::vector<float>{0.1307f});
  CHECK(m.std == std::vector<float>{0.3081f});
  CHECK(m.class_names.front() == "0");
  const Dataset f = load_dataset("fashion-mnist:" + dir.str(), Split::Train);
  CHECK(f.name == "fashion-mnist");
  CHECK(f.mean == std::vector<float>{0.2860f});
  CHECK(f.std == std::vector<float>{0.3530f});
  CHECK(f.num_classes() == 10);
  CHECK(f.class_names[9] == "Ankle boot");
}

TEST_CASE("real fashion-mnist loads when installed") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir)) {
    MESSAGE("skipped: " << dir << " is absent (install dataset-fashion-mnist)");
    return;
  }
  const Dataset train = load_dataset("fashion-mnist", Split::Train);
  const Dataset test = load_dataset("fashion-mnist", Split::Test);
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.channels == 1);
  CHECK(train.height == 28);
  CHECK(train.width == 28);
  CHECK(train.images.size() == 47040000u);
  // Known first labels: train 9 0 0 3, test 9 2 1 1; each class has 6000 training images.
  CHECK(std::vector<int32_t>(train.labels.begin(), train.labels.begin() + 4) == std::vector<int32_t>{9, 0, 0, 3});
  CHECK(std::vector<int32_t>(test.labels.begin(), test.labels.begin() + 4) == std::vector<int32_t>{9, 2, 1, 1});
  CHECK(std::count(train.labels.begin(), train.labels.end(), 3) == 6000);
  int64_t first_sum = 0;
  for (int64_t k = 0; k < 784; ++k) first_sum += train.images[k];
  CHECK(first_sum == 76247);
  // The fixed defaults are the train split's real statistics.
  const auto [mean, std] = channel_mean_std(train);
  CHECK(mean[0] == doctest::Approx(0.2860).epsilon(0.001));
  CHECK(std[0] == doctest::Approx(0.3530).epsilon(0.001));
}

// ---------------------------------------------------------------- CIFAR-10

TEST_CASE("cifar10: binary batches load in record order with class names from batches.meta.txt") {
  TempDir dir;
  const SyntheticOptions o = small_options(23, 7, 3, 32, 32);
  Dataset train = make_synthetic_dataset(o, Split::Train);
  train.class_names = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
  Dataset test = make_synthetic_dataset(o, Split::Test);
  test.class_names = train.class_names;  // each split's writer also writes batches.meta.txt
  write_cifar10_split(dir.str(), train, Split::Train);
  write_cifar10_split(dir.str(), test, Split::Test);
  CHECK(fs::file_size(dir / "data_batch_1.bin") == 4u * kCifarRecordBytes);  // 23 records over 5 files
  CHECK(fs::file_size(dir / "data_batch_5.bin") == 5u * kCifarRecordBytes);
  const Dataset a = load_dataset("cifar10:" + dir.str(), Split::Train);
  const Dataset b = load_dataset("cifar10:" + dir.str(), Split::Test);
  CHECK(a.size() == 23);
  CHECK(b.size() == 7);
  CHECK(a.channels == 3);
  CHECK(a.height == 32);
  CHECK(a.images == train.images);
  CHECK(a.labels == train.labels);
  CHECK(b.images == test.images);
  CHECK(a.class_names == train.class_names);
  CHECK(a.mean == std::vector<float>{0.4914f, 0.4822f, 0.4465f});
  CHECK(a.std == std::vector<float>{0.2470f, 0.2435f, 0.2616f});

  fs::remove(dir / "batches.meta.txt");
  CHECK(load_dataset("cifar10:" + dir.str(), Split::Test).class_names == cifar10_class_names());

  // A label byte beyond the class count.
  {
    std::fstream f(dir / "test_batch.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(kCifarRecordBytes * 2);
    f.put(static_cast<char>(10));
  }
  const std::string bad_label = error_of([&] { load_dataset("cifar10:" + dir.str(), Split::Test); });
  CHECK(contains(bad_label, dir / "test_batch.bin"));
  CHECK(contains(bad_label, "label 10 in record 2 is out of range: expected < 10 classes"));

  // A truncated batch file.
  fs::resize_file(dir / "data_batch_3.bin", 3 * kCifarRecordBytes - 100);
  const std::string truncated = error_of([&] { load_dataset("cifar10:" + dir.str(), Split::Train); });
  CHECK(contains(truncated, "error reading " + (dir / "data_batch_3.bin")));
  CHECK(contains(truncated, "not a positive multiple of the 3073-byte record"));

  // A missing batch file.
  fs::remove(dir / "data_batch_4.bin");
  fs::resize_file(dir / "data_batch_3.bin", 3 * kCifarRecordBytes);
  const std::string missing = error_of([&] { load_dataset("cifar10:" + dir.str(), Split::Train); });
  CHECK(contains(missing, dir / "data_batch_4.bin"));
  CHECK(contains(missing, "missing file"));
}

// ---------------------------------------------------------------- image folders

TEST_CASE("resize_bilinear: identity, exact upscale and downscale values") {
  const std::vector<uint8_t> src = {0, 100, 200, 50};  // 1x2x2
  std::vector<uint8_t> same(4);
  resize_bilinear(src.data(), 1, 2, 2, same.data(), 2, 2);
  CHECK(same == src);
  // 2x2 -> 4x4 with half-pixel centres: s = (d + 0.5) / 2 - 0.5 = -0.25 (clamped 0), 0.25, 0.75, 1.25 (1).
  std::vector<uint8_t> up(16);
  resize_bilinear(src.data(), 1, 2, 2, up.data(), 4, 4);
  CHECK(up[0] == 0);      // corner
  CHECK(up[3] == 100);    // top-right corner
  CHECK(up[1] == 25);     // x = 0.25 on the top row: 0 + 0.25 * 100
  CHECK(up[2] == 75);     // x = 0.75
  CHECK(up[5] == 59);     // (0.25, 0.25): 0.75 * 25 + 0.25 * 162.5 = 59.375
  // 4x4 -> 2x2: s = 0.5 and 2.5, so each output is the mean of a 2x2 block.
  const std::vector<uint8_t> big = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150};
  std::vector<uint8_t> down(4);
  resize_bilinear(big.data(), 1, 4, 4, down.data(), 2, 2);
  CHECK(down == std::vector<uint8_t>{25, 45, 105, 125});
}

TEST_CASE("folder: hold-out split, class order, channels, resize and train statistics") {
  TempDir dir;
  // Classes "bird" (12 images) and "cat" (3 images); every class folder is sorted by file name.
  fs::create_directories(dir / "cat");
  fs::create_directories(dir / "bird");
  for (int i = 0; i < 12; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "img%02d.png", i);
    // The first image (bird/img00.png) fixes the size 6x4 (w x h); img05 is bigger and is resized.
    if (i == 5) write_png_gray((dir / "bird") + "/" + name, 12, 8, 200);
    else write_png_gray((dir / "bird") + "/" + name, 6, 4, static_cast<uint8_t>(10 * i));
  }
  write_png_rgb(dir / "cat/a.png", 6, 4, 255, 0, 0);  // one colour image -> 3 channels
  write_png_gray(dir / "cat/b.png", 6, 4, 30);
  {
    std::vector<uint8_t> px(6 * 4, 90);  // a BMP is decoded too
    REQUIRE(stbi_write_bmp((dir / "cat/c.bmp").c_str(), 6, 4, 1, px.data()) != 0);
  }
  std::ofstream(dir / "cat/notes.txt") << "not an image";  // ignored

  const Dataset train = load_dataset("folder:" + dir.str(), Split::Train);
  const Dataset test = load_dataset("folder:" + dir.str(), Split::Test);
  CHECK(train.name == "folder");
  CHECK(train.class_names == std::vector<std::string>{"bird", "cat"});
  CHECK(train.channels == 3);
  CHECK(train.height == 4);
  CHECK(train.width == 6);
  // bird: 12 files, index 9 held out; cat: 3 files, none held out.
  CHECK(train.size() == 11 + 3);
  CHECK(test.size() == 1);
  CHECK(test.labels == std::vector<int32_t>{0});
  CHECK(test.image(0)[0] == 90);  // bird/img09.png, value 10 * 9
  // bird/img05.png was 12x8 of 200: resized to 6x4, still 200 in every channel.
  const uint8_t* resized = train.image(5);
  CHECK(std::all_of(resized, resized + train.image_bytes(), [](uint8_t v) { return v == 200; }));
  // cat/a.png is red; gray images are replicated into all three channels.
  const uint8_t* red = train.image(11);
  CHECK(train.labels[11] == 1);
  CHECK(red[0] == 255);
  CHECK(red[24] == 0);
  CHECK(red[48] == 0);
  CHECK(train.image(13)[30] == 90);  // the BMP
  const auto [mean, std] = channel_mean_std(train);
  CHECK(train.mean == mean);
  CHECK(test.mean == mean);  // the test split uses the train statistics
  CHECK(test.std == std);
  CHECK(mean[0] > mean[1]);  // the red image lifts channel 0
}

TEST_CASE("folder: train/ with test/ or val/ subfolders are used as splits") {
  TempDir dir;
  for (const char* cls : {"x", "y"}) {
    fs::create_directories(dir / (std::string("train/") + cls));
    for (int i = 0; i < 3; ++i)
      write_png_gray(dir / ("train/" + std::string(cls) + "/" + std::to_string(i) + ".png"), 5, 5,
                     static_cast<uint8_t>(cls[0] == 'x' ? 20 : 220));
  }
  fs::create_directories(dir / "val/y");
  write_png_gray(dir / "val/y/0.png", 10, 10, 220);  // resized to 5x5
  const Dataset train = load_dataset("folder:" + dir.str(), Split::Train);
  const Dataset test = load_dataset("folder:" + dir.str(), Split::Test);
  CHECK(train.size() == 6);
  CHECK(train.class_names == std::vector<std::string>{"x", "y"});
  CHECK(train.channels == 1);
  CHECK(test.size() == 1);
  CHECK(test.labels == std::vector<int32_t>{1});
  CHECK(test.image(0)[12] == 220);
  CHECK(test.height == 5);

  // test/ wins over val/, and a test class unknown to train is an error naming the folder.
  fs::create_directories(dir / "test/z");
  write_png_gray(dir / "test/z/0.png", 5, 5, 1);
  const std::string unknown = error_of([&] { load_dataset("folder:" + dir.str(), Split::Test); });
  CHECK(contains(unknown, dir / "test/z"));
  CHECK(contains(unknown, "class \"z\" is not among the 2 classes"));
}

TEST_CASE("folder: a folder with only test/ (or val/) is an evaluation set") {
  TempDir dir;
  // Synthetic test images as DIR/test/<class>/: the same bytes and labels come back.
  const SyntheticOptions o = small_options(10, 30, 1, 7, 6);
  const Dataset ds = make_synthetic_dataset(o, Split::Test);
  write_image_folder(dir / "test", ds, "png");
  const Dataset test = load_dataset("folder:" + dir.str(), Split::Test);
  CHECK(test.class_names == ds.class_names);  // "0".."9", not one class named "test"
  REQUIRE(test.size() == 30);
  CHECK(test.height == 7);
  CHECK(test.width == 6);
  CHECK(test.channels == 1);
  for (int64_t i = 0; i < test.size(); ++i) {  // sorted by class, then by sample index
    const int64_t k = test.labels[i], j = i % 3;
    CHECK(k == i / 3);
    REQUIRE(std::equal(test.image(i), test.image(i) + test.image_bytes(), ds.image(k + 10 * j)));
  }
  CHECK(test.mean == channel_mean_std(test).first);
  // Training on it is one error naming the folder and what was expected.
  CHECK(error_of([&] { load_dataset("folder:" + dir.str(), Split::Train); }) ==
        "error reading " + dir.str() + ": has test/ but no train/ (expected " + (dir / "train") +
            "/<class>/ images to train on; a folder with only test/ or val/ is an evaluation set)");
  // val/ alone works the same way.
  TempDir val;
  write_image_folder(val / "val", ds, "png");
  CHECK(load_dataset("folder:" + val.str(), Split::Test).labels == test.labels);
  CHECK(contains(error_of([&] { load_dataset("folder:" + val.str(), Split::Train); }), "has val/ but no train/"));
  // A class folder beside test/ makes test/ an ordinary class (hold-out mode), as before.
  fs::create_directories(dir / "other");
  write_png_gray(dir / "other/0.png", 7, 6, 9);
  write_png_gray(dir / "test/0.png", 7, 6, 9);
  CHECK(load_dataset("folder:" + dir.str(), Split::Train).class_names == std::vector<std::string>{"other", "test"});
  // An empty test/ is an error naming it.
  TempDir empty;
  fs::create_directories(empty / "test");
  CHECK(contains(error_of([&] { load_dataset("folder:" + empty.str(), Split::Test); }),
                 (empty / "test") + ": no class subfolders"));
}

TEST_CASE("folder: written synthetic PNG and BMP folders round-trip") {
  for (const std::string format : {"png", "bmp"}) {
    CAPTURE(format);
    TempDir dir;
    const SyntheticOptions o = small_options(40, 0, 3, 9, 11);
    const Dataset ds = make_synthetic_dataset(o, Split::Train);
    write_image_folder(dir.str(), ds, format);
    const Dataset back = load_dataset("folder:" + dir.str(), Split::Train);
    // 4 images per class, none held out (index 9 never reached); files sort by sample index.
    CHECK(back.size() == 40);
    CHECK(back.height == 9);
    CHECK(back.width == 11);
    CHECK(back.channels == 3);
    for (int64_t i = 0; i < back.size(); ++i) {
      const int64_t k = back.labels[i];
      const int64_t j = i % 4;  // j-th image of class k is sample k + 10 * j
      REQUIRE(std::equal(back.image(i), back.image(i) + back.image_bytes(), ds.image(k + 10 * j)));
    }
  }
}

TEST_CASE("folder: errors name the folder or file") {
  TempDir dir;
  CHECK(contains(error_of([&] { load_dataset("folder:" + (dir / "nope"), Split::Train); }), "missing directory"));
  CHECK(contains(error_of([&] { load_dataset("folder:" + dir.str(), Split::Train); }), "no class subfolders"));
  fs::create_directories(dir / "a");
  CHECK(contains(error_of([&] { load_dataset("folder:" + dir.str(), Split::Train); }),
                 "class folder has no PNG/JPEG/BMP images"));
  std::ofstream(dir / "a/broken.png") << "this is not a png";
  const std::string broken = error_of([&] { load_dataset("folder:" + dir.str(), Split::Train); });
  CHECK(contains(broken, dir / "a/broken.png"));
  CHECK(contains(broken, "not a decodable PNG/JPEG/BMP image"));
  fs::remove(dir / "a/broken.png");
  fs::create_directories(dir / "train/a");
  write_png_gray(dir / "train/a/0.png", 2, 2, 0);
  CHECK(contains(error_of([&] { load_dataset("folder:" + dir.str(), Split::Test); }), "neither test/ nor val/"));
}

TEST_CASE("folder: each bad image is one error naming it; skip_bad_images leaves them out and lists them") {
  TempDir dir;
  fs::create_directories(dir / "a");
  fs::create_directories(dir / "b");
  for (int i = 0; i < 3; ++i) {
    write_png_gray(dir / ("a/" + std::to_string(i) + ".png"), 8, 8, static_cast<uint8_t>(40 * i));
    write_png_gray(dir / ("b/" + std::to_string(i) + ".png"), 8, 8, static_cast<uint8_t>(200 - 40 * i));
  }
  // A 16-bit PNG is not bad: it decodes to its high byte (0x8a8a -> 0x8a), like an 8-bit 0x8a.
  write_png_gray16(dir / "b/9_deep.png", 8, 8, 0x8a8a);
  // The bad ones, one at a time: the error names the file and says why.
  const auto truncated = [&](const std::string& path) {
    std::vector<uint8_t> px(64 * 64);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 37 % 251);  // incompressible
    REQUIRE(stbi_write_png(path.c_str(), 64, 64, 1, px.data(), 64) != 0);
    fs::resize_file(path, fs::file_size(path) / 2);
  };
  const std::vector<std::pair<std::string, std::function<void(const std::string&)>>> bad = {
      {"a/5_truncated.png", truncated},
      {"a/6_text.jpg", [](const std::string& p) { std::ofstream(p) << "<html>404 not found</html>\n"; }},
      {"b/7_empty.png", [](const std::string& p) { std::ofstream{p}; }},
  };
  for (const auto& [name, make] : bad) {
    CAPTURE(name);
    make(dir / name);
    const std::string e = error_of([&] { load_dataset("folder:" + dir.str(), Split::Train); });
    CHECK(contains(e, "error reading " + (dir / name) + ": not a decodable PNG/JPEG/BMP image ("));
    fs::remove(dir / name);
  }
  for (const auto& [name, make] : bad) make(dir / name);
  const Dataset ds = load_dataset("folder:" + dir.str(), Split::Train, {.skip_bad_images = true});
  CHECK(ds.size() == 7);  // 6 good + the 16-bit one
  REQUIRE(ds.skipped.size() == 3);
  for (const auto& [name, make] : bad)
    CHECK(std::count_if(ds.skipped.begin(), ds.skipped.end(), [&](const std::string& l) { return contains(l, dir / name); }) == 1);
  CHECK(std::count(ds.labels.begin(), ds.labels.end(), 0) == 3);
  CHECK(std::count(ds.labels.begin(), ds.labels.end(), 1) == 4);  // labels stay with their images
  CHECK(ds.labels.back() == 1);
  CHECK(ds.image(6)[0] == 0x8a);
  CHECK(ds.image(0)[0] == 0);  // a/0.png
}

// ---------------------------------------------------------------- loader: order and sharding

TEST_CASE("loader: same seed same order, new epoch new order, every sample once") {
  const Dataset ds = pattern_dataset(100, 1, 3, 3);
  LoaderOptions o;
  o.batch_size = 10;
  o.seed = 42;
  DataLoader a(ds, o), b(ds, o);
  auto epoch_order = [](DataLoader& l) {
    std::vector<int64_t> all;
    for (int64_t s = 0; s < l.steps(); ++s) {
      const auto idx = l.batch(s).indices;
      all.insert(all.end(), idx.begin(), idx.end());
    }
    return all;
  };
  const auto e0 = epoch_order(a);
  CHECK(e0 == epoch_order(b));
  CHECK(e0.size() == 100u);
  CHECK(std::set<int64_t>(e0.begin(), e0.end()).size() == 100u);
  std::vector<int64_t> identity(100);
  for (int i = 0; i < 100; ++i) identity[i] = i;
  CHECK(e0 != identity);
  a.set_epoch(1);
  const auto e1 = epoch_order(a);
  CHECK(e1 != e0);
  b.set_epoch(1);
  CHECK(epoch_order(b) == e1);
  a.set_epoch(0);
  CHECK(epoch_order(a) == e0);  // epochs are reproducible in any order (resume)
  o.seed = 43;
  DataLoader c(ds, o);
  CHECK(epoch_order(c) != e0);
  o.shuffle = false;
  DataLoader d(ds, o);
  d.set_epoch(5);
  CHECK(epoch_order(d) == identity);
  // Labels follow the indices.
  const Batch batch = a.batch(3);
  for (size_t i = 0; i < batch.indices.size(); ++i) CHECK(batch.labels[i] == ds.labels[batch.indices[i]]);
}

TEST_CASE("loader: drop_last step counts and the partial last batch") {
  const Dataset ds = pattern_dataset(103, 1, 2, 2);
  LoaderOptions o;
  o.batch_size = 10;
  DataLoader drop(ds, o);
  CHECK(drop.steps() == 10);
  CHECK(drop.samples_per_epoch() == 100);
  o.drop_last = false;
  DataLoader keep(ds, o);
  CHECK(keep.steps() == 11);
  CHECK(keep.batch(10).images.shape() == Shape{3, 1, 2, 2});
  CHECK(keep.samples_per_epoch() == 103);
  CHECK(contains(error_of([&] { (void)drop.batch(10); }), "step 10 out of range"));
}

TEST_CASE("loader: sharding reproduces the 1-rank global batches, all ranks the same steps") {
  const Dataset ds = pattern_dataset(103, 2, 6, 5);
  for (bool drop_last : {true, false}) {
    for (int world : {2, 4}) {
      CAPTURE(drop_last);
      CAPTURE(world);
      LoaderOptions o;
      o.batch_size = 8;
      o.seed = 7;
      o.drop_last = drop_last;
      o.random_crop = true;  // augmentation must not depend on the rank either
      o.crop_padding = 2;
      o.horizontal_flip = true;
      DataLoader single(ds, o);
      std::vector<DataLoader> ranks;
      for (int r = 0; r < world; ++r) {
        LoaderOptions ro = o;
        ro.rank = r;
        ro.world_size = world;
        ranks.emplace_back(ds, ro);
      }
      for (auto& l : ranks) l.set_epoch(3);
      single.set_epoch(3);
      int64_t total = 0;
      for (auto& l : ranks) {
        CHECK(l.steps() == single.steps());
        CHECK(l.local_batch_size() == 8 / world);
        total += l.samples_per_epoch();
      }
      CHECK(total == single.samples_per_epoch());
      CHECK(single.steps() == (drop_last ? 12 : 13));
      std::set<int64_t> seen;
      for (int64_t s = 0; s < single.steps(); ++s) {
        const Batch global = single.batch(s);
        std::vector<int64_t> indices;
        std::vector<float> values;
        for (auto& l : ranks) {
          const Batch local = l.batch(s);
          if (s + 1 < single.steps() || drop_last) CHECK(local.indices.size() == size_t(8 / world));
          indices.insert(indices.end(), local.indices.begin(), local.indices.end());
          const auto v = tensor_values(local.images);
          values.insert(values.end(), v.begin(), v.end());
        }
        CHECK(indices == global.indices);
        CHECK(values == tensor_values(global.images));
        seen.insert(indices.begin(), indices.end());
      }
      CHECK(static_cast<int64_t>(seen.size()) == single.samples_per_epoch());  // disjoint shards
    }
  }
}

TEST_CASE("loader: evaluation layout walks contiguous shards in order") {
  const Dataset ds = pattern_dataset(103, 1, 2, 2);
  std::vector<int64_t> all;
  for (int r = 0; r < 3; ++r) {
    DataLoader l(ds, LoaderOptions::evaluation(12, r, 3));  // local batch 4
    CHECK(l.local_batch_size() == 4);
    const int64_t lo = r * 103 / 3, hi = (r + 1) * 103 / 3;
    CHECK(l.samples_per_epoch() == hi - lo);
    CHECK(l.steps() == (hi - lo + 3) / 4);
    for (int64_t s = 0; s < l.steps(); ++s) {
      const auto idx = l.batch(s).indices;
      all.insert(all.end(), idx.begin(), idx.end());
    }
  }
  std::vector<int64_t> identity(103);
  for (int i = 0; i < 103; ++i) identity[i] = i;
  CHECK(all == identity);
}

TEST_CASE("loader: option errors") {
  const Dataset ds = pattern_dataset(20, 1, 2, 2);
  LoaderOptions o;
  o.batch_size = 6;
  o.world_size = 4;
  CHECK(contains(error_of([&] { DataLoader l(ds, o); }), "global batch size 6 is not a multiple of world_size 4"));
  o.batch_size = 8;
  o.rank = 4;
  CHECK(contains(error_of([&] { DataLoader l(ds, o); }), "rank 4 out of range"));
  o = LoaderOptions{};
  o.batch_size = 21;
  CHECK(contains(error_of([&] { DataLoader l(ds, o); }), "fewer than one global batch of 21"));
  Dataset bad = ds;
  bad.labels[3] = 9;
  o.batch_size = 4;
  CHECK(contains(error_of([&] { DataLoader l(bad, o); }), "label 9 at index 3 is out of range"));
}

// ---------------------------------------------------------------- loader: values and augmentation

TEST_CASE("loader: normalization is (pixel / 255 - mean) / std per channel") {
  const Dataset ds = pattern_dataset(5, 3, 4, 3);
  DataLoader l(ds, LoaderOptions::evaluation(5));
  const Batch b = l.batch(0);
  CHECK(b.images.shape() == Shape{5, 3, 4, 3});
  const auto v = tensor_values(b.images);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t k = 0; k < ds.image_bytes(); ++k) {
      const int64_t c = k / 12;
      REQUIRE(v[i * 36 + k] == normalized(ds, c, ds.image(i)[k]));
    }
  // A spot value by hand: sample 2, channel 1, (y, x) = (3, 2): (2*7 + 31 + 15 + 6) % 256 = 66.
  CHECK(v[2 * 36 + 12 + 3 * 3 + 2] == doctest::Approx((66 / 255.0 - 0.35) / 0.4).epsilon(1e-6));
}

TEST_CASE("loader: augmentation is a shifted, maybe mirrored, zero-padded copy, same for any thread count") {
  // 300 items of 126 bytes: several parallel_for chunks with 2 threads, one with 1 thread.
  const Dataset ds = pattern_dataset(300, 2, 7, 9);
  LoaderOptions o;
  o.batch_size = 300;
  o.seed = 11;
  o.random_crop = true;
  o.crop_padding = 3;
  o.horizontal_flip = true;
  set_num_threads(1);
  DataLoader l(ds, o);
  l.set_epoch(2);
  const Batch one = l.batch(0);
  set_num_threads(2);
  const Batch two = l.batch(0);
  set_num_threads(0);
  CHECK(one.indices == two.indices);
  CHECK(tensor_values(one.images) == tensor_values(two.images));

  // Each output must equal the source shifted by some (dy, dx) in [-3, 3]^2, optionally
  // mirrored, with raw-zero padding; count how many samples were flipped / shifted.
  const auto v = tensor_values(one.images);
  const int64_t C = 2, H = 7, W = 9;
  int flipped = 0, shifted = 0;
  for (int64_t i = 0; i < 300; ++i) {
    const uint8_t* src = ds.image(one.indices[i]);
    bool matched = false;
    for (int flip = 0; flip < 2 && !matched; ++flip)
      for (int64_t dy = -3; dy <= 3 && !matched; ++dy)
        for (int64_t dx = -3; dx <= 3 && !matched; ++dx) {
          bool ok = true;
          for (int64_t c = 0; c < C && ok; ++c)
            for (int64_t y = 0; y < H && ok; ++y)
              for (int64_t x = 0; x < W && ok; ++x) {
                const int64_t sy = y + dy, sx = (flip ? W - 1 - x : x) + dx;
                const uint8_t raw = (sy < 0 || sy >= H || sx < 0 || sx >= W) ? 0 : src[(c * H + sy) * W + sx];
                ok = v[((i * C + c) * H + y) * W + x] == normalized(ds, c, raw);
              }
          if (ok) {
            matched = true;
            flipped += flip;
            shifted += (dy != 0 || dx != 0);
          }
        }
    CHECK(matched);
  }
  CHECK(flipped > 100);  // about half of 300
  CHECK(flipped < 200);
  CHECK(shifted > 270);  // 48/49 of the crops move

  // Another epoch draws other augmentations; the plain loader leaves images untouched.
  l.set_epoch(3);
  l.set_epoch(2);
  CHECK(tensor_values(l.batch(0).images) == v);
  o.random_crop = false;
  o.horizontal_flip = false;
  DataLoader plain(ds, o);
  plain.set_epoch(2);
  const Batch p = plain.batch(0);
  CHECK(p.indices == one.indices);
  CHECK(tensor_values(p.images) != v);
}

// ---------------------------------------------------------------- synthetic data

TEST_CASE("synthetic: deterministic, seed-dependent and learnable by nearest centroid") {
  const SyntheticOptions o = small_options(500, 200, 1, 28, 28);
  const Dataset train = make_synthetic_dataset(o, Split::Train);
  CHECK(train.images == make_synthetic_dataset(o, Split::Train).images);
  SyntheticOptions other = o;
  other.seed = 1;
  CHECK(train.images != make_synthetic_dataset(other, Split::Train).images);
  const Dataset test = make_synthetic_dataset(o, Split::Test);
  CHECK(test.images != std::vector<uint8_t>(train.images.begin(), train.images.begin() + test.images.size()));
  // Nearest class centroid on raw pixels: a linear rule, so a small model learns it quickly.
  const int64_t d = train.image_bytes();
  std::vector<double> centroid(10 * d, 0.0);
  std::vector<int> count(10, 0);
  for (int64_t i = 0; i < train.size(); ++i) {
    ++count[train.labels[i]];
    for (int64_t k = 0; k < d; ++k) centroid[train.labels[i] * d + k] += train.image(i)[k];
  }
  for (int c = 0; c < 10; ++c)
    for (int64_t k = 0; k < d; ++k) centroid[c * d + k] /= count[c];
  int correct = 0;
  for (int64_t i = 0; i < test.size(); ++i) {
    int best = -1;
    double best_dist = 1e300;
    for (int c = 0; c < 10; ++c) {
      double dist = 0;
      for (int64_t k = 0; k < d; ++k) dist += std::pow(test.image(i)[k] - centroid[c * d + k], 2);
      if (dist < best_dist) best_dist = dist, best = c;
    }
    correct += best == test.labels[i];
  }
  CHECK(correct >= 190);  // >= 95%
  TempDir dir;
  const std::string spec = write_synthetic_idx(dir.str(), o);
  CHECK(spec == "idx:" + dir.str());
  CHECK(load_dataset(spec, Split::Test).images == test.images);
}

// ---------------------------------------------------------------- error paths

TEST_CASE("errors: dataset spec") {
  const std::string unknown = error_of([] { load_dataset("foo", Split::Train); });
  CHECK(contains(unknown, "unknown dataset spec \"foo\""));
  CHECK(contains(unknown, "fashion-mnist, fashion-mnist:DIR, mnist:DIR, idx:DIR, cifar10:DIR, folder:DIR"));
  CHECK(contains(error_of([] { load_dataset("mnist", Split::Train); }), "needs a directory: expected mnist:DIR"));
  CHECK(contains(error_of([] { load_dataset("idx:", Split::Train); }), "needs a directory"));
}

TEST_CASE("errors: IDX missing file, bad magic, truncated, hostile header, count mismatch, corrupt gzip") {
  TempDir dir;
  const std::string spec = "idx:" + dir.str();
  const std::string images = dir / "train-images-idx3-ubyte";
  const std::string labels = dir / "train-labels-idx1-ubyte";

  const std::string missing = error_of([&] { load_dataset(spec, Split::Train); });
  CHECK(contains(missing, "missing file: expected " + images + " or " + images + ".gz"));

  write_bytes(labels + ".gz", idx_labels(10), true);
  write_bytes(images, idx_images(0x00000801, 10, 28, 28, 7840), false);
  CHECK(contains(error_of([&] { load_dataset(spec, Split::Train); }),
                 "error reading " + images + ": bad magic number 0x00000801, expected 0x00000803"));

  // Truncated, plain and gzipped: the message says how many bytes were expected and found.
  write_bytes(images, idx_images(0x00000803, 60000, 28, 28, 1000), false);
  CHECK(contains(error_of([&] { load_dataset(spec, Split::Train); }),
                 "error reading " + images + ": truncated: expected 47040000 image bytes, got 1000"));
  fs::remove(images);
  write_bytes(images + ".gz", idx_images(0x00000803, 60000, 28, 28, 1000), true);
  CHECK(contains(error_of([&] { load_dataset(spec, Split::Train); }),
                 "error reading " + images + ".gz: truncated: expected 47040000 image bytes, got 1000"));
  {
    // A gzip stream cut in the middle reads as truncated too.
    TempDir other;
    std::vector<uint8_t> full = idx_images(0x00000803, 3, 28, 28, 0);
    uint32_t lcg = 1;  // incompressible payload, so half the .gz holds the header and some pixels
    for (int k = 0; k < 3 * 784; ++k) full.push_back(static_cast<uint8_t>((lcg = lcg * 1664525u + 1013904223u) >> 24));
    write_bytes(other / "full.gz", full, true);
    std::vector<char> gz(fs::file_size(other / "full.gz"));
    std::ifstream(other / "full.gz", std::ios::binary).read(gz.data(), static_cast<std::streamsize>(gz.size()));
    std::ofstream(images + ".gz", std::ios::binary).write(gz.data(), static_cast<std::streamsize>(gz.size() / 2));
    const std::string cut = error_of([&] { load_dataset(spec, Split::Train); });
    CHECK(contains(cut, "error reading " + images + ".gz: truncated: expected 2352 image bytes, got"));
  }
  // Corrupt deflate data after a valid gzip header.
  {
    std::vector<uint8_t> junk(200, 0xff);
    const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    std::copy(header, header + 10, junk.begin());
    write_bytes(images + ".gz", junk, false);
    const std::string corrupt = error_of([&] { load_dataset(spec, Split::Train); });
    CHECK(contains(corrupt, "error reading " + images + ".gz: "));
    CHECK((contains(corrupt, "corrupt gzip data") || contains(corrupt, "truncated header")));
  }
  // Hostile headers: beyond the sanity bounds -> refused before any allocation; within the
  // bounds but far larger than the file -> read progressively and reported as truncated.
  write_bytes(images + ".gz", idx_images(0x00000803, 0xffffffffu, 0xffffffffu, 0xffffffffu, 16), true);
  CHECK(contains(error_of([&] { load_dataset(spec, Split::Train); }), "implausible header: 4294967295 images"));
  write_bytes(images + ".gz", idx_images(0x00000803, 1u << 20, 100, 100, 16), true);
  CHECK(contains(error_of([&] { load_dataset(spec, Split::Train); }),
                 "truncated: expected 10485760000 image bytes, got 16"));
  write_bytes(images + ".gz", idx_images(0x00000803, 4, 0, 28, 0), true);
  CHECK(contains(error_of([&] { load_dataset(spec, Split::Train); }), "implausible header"));
  // A header cut short.
  write_bytes(images + ".gz", {0, 0, 8, 3, 0, 0}, true);
  CHECK(contains(error_of([&] { load_dataset(spec, Split::Train); }), "truncated header"));

  // Count mismatch and out-of-range labels.
  write_bytes(images + ".gz", idx_images(0x00000803, 12, 28, 28, 12 * 784), true);
  const std::string mismatch = error_of([&] { load_dataset(spec, Split::Train); });
  CHECK(contains(mismatch, "error reading " + labels + ".gz: label/image count mismatch: 10 labels but"));
  CHECK(contains(mismatch, "has 12 images"));
  write_bytes(labels + ".gz", idx_labels(12, 10), true);
  CHECK(contains(error_of([&] { load_dataset("mnist:" + dir.str(), Split::Train); }),
                 "label 10 at index 0 is out of range: expected < 10 classes"));
  // The idx: form derives the class count from the train labels, so 10 is fine there ...
  CHECK(load_dataset(spec, Split::Train).num_classes() == 11);
  // ... but a test label beyond it is not.
  write_bytes(dir / "t10k-images-idx3-ubyte", idx_images(0x00000803, 2, 28, 28, 2 * 784), false);
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_labels(2, 11), false);
  CHECK(contains(error_of([&] { load_dataset(spec, Split::Test); }), "label 11 at index 0 is out of range: expected < 11"));
}
