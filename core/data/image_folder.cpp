// image_folder.cpp: folder:DIR scanning, stb_image decoding (in parallel), bilinear resize.
#include "core/data/image_folder.h"

#include <stb/stb_image.h>  // Debian's libstb holds the implementation: no STB_IMAGE_IMPLEMENTATION

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/threading.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxPixelsPerImage = 1ll << 26;
constexpr int64_t kMaxDatasetBytes = 1ll << 34;

struct Entry {
  std::string path;
  int32_t label;
};

struct Layout {
  std::vector<std::string> classes;
  std::vector<Entry> train, test;
  std::string test_dir;  // empty in hold-out mode
  bool has_test = true;
  bool test_only = false;  // DIR holds only test/ (or val/): an evaluation set, no train split
};

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

std::vector<std::string> sorted_subdirs(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory()) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> sorted_images(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_image_file(e.path())) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

Layout scan(const std::string& dir) {
  std::error_code ec;
  LOWBIT_CHECK(fs::is_directory(dir, ec), "error reading ", dir,
               ": missing directory (expected one subfolder of PNG/JPEG/BMP images per class)");
  Layout layout;
  const fs::path root(dir);
  const bool split_folders = fs::is_directory(root / "train", ec);
  if (!split_folders) {
    // Only test/ and/or val/ beside each other (no train/): those are splits, not classes.
    const std::vector<std::string> subdirs = sorted_subdirs(root);
    layout.test_only = !subdirs.empty() && std::all_of(subdirs.begin(), subdirs.end(), [](const std::string& s) {
      return s == "test" || s == "val";
    });
  }
  if (layout.test_only) {
    const fs::path test_root = fs::is_directory(root / "test", ec) ? root / "test" : root / "val";
    layout.test_dir = test_root.string();
    layout.classes = sorted_subdirs(test_root);
    LOWBIT_CHECK(!layout.classes.empty(), "error reading ", test_root.string(),
                 ": no class subfolders (expected one subfolder of PNG/JPEG/BMP images per class)");
    for (size_t k = 0; k < layout.classes.size(); ++k)
      for (const std::string& f : sorted_images(test_root / layout.classes[k]))
        layout.test.push_back({f, static_cast<int32_t>(k)});
    LOWBIT_CHECK(!layout.test.empty(), "error reading ", test_root.string(), ": no PNG/JPEG/BMP images in its class folders");
    return layout;
  }
  const fs::path class_root = split_folders ? root / "train" : root;
  layout.classes = sorted_subdirs(class_root);
  LOWBIT_CHECK(!layout.classes.empty(), "error reading ", class_root.string(),
               ": no class subfolders (expected one subfolder of PNG/JPEG/BMP images per class)");
  for (size_t k = 0; k < layout.classes.size(); ++k) {
    const fs::path class_dir = class_root / layout.classes[k];
    const std::vector<std::string> files = sorted_images(class_dir);
    LOWBIT_CHECK(!files.empty(), "error reading ", class_dir.string(),
                 ": class folder has no PNG/JPEG/BMP images");
    for (size_t i = 0; i < files.size(); ++i) {
      const Entry entry{files[i], static_cast<int32_t>(k)};
      if (!split_folders && i % 10 == 9) layout.test.push_back(entry);
      else layout.train.push_back(entry);
    }
  }
  if (split_folders) {
    fs::path test_root;
    if (fs::is_directory(root / "test", ec)) test_root = root / "test";
    else if (fs::is_directory(root / "val", ec)) test_root = root / "val";
    layout.has_test = !test_root.empty();
    layout.test_dir = test_root.string();
    if (layout.has_test) {
      for (const std::string& name : sorted_subdirs(test_root)) {
        const auto it = std::find(layout.classes.begin(), layout.classes.end(), name);
        LOWBIT_CHECK(it != layout.classes.end(), "error reading ", (test_root / name).string(),
                     ": class \"", name, "\" is not among the ", layout.classes.size(),
                     " classes of ", class_root.string());
        const auto label = static_cast<int32_t>(it - layout.classes.begin());
        for (const std::string& f : sorted_images(test_root / name)) layout.test.push_back({f, label});
      }
    }
  }
  return layout;
}

struct Geometry {
  int64_t channels, height, width;
};

// Throws the first error (naming its file), or with `skip` drops the failed entries and lists
// them in `skipped`. errors[i] is "" for a good entry.
void drop_failed(std::vector<Entry>& entries, const std::vector<std::string>& errors, bool skip,
                 std::vector<std::string>* skipped) {
  std::vector<Entry> kept;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (errors[i].empty()) {
      kept.push_back(entries[i]);
      continue;
    }
    const std::string line = detail::concat(entries[i].path, ": ", errors[i]);
    if (!skip) throw Error("error reading " + line);
    if (skipped) skipped->push_back(line);
  }
  entries = std::move(kept);
}

// Header-only pass over the train files (stbi_info), in parallel; drop_failed() on the unreadable.
Geometry train_geometry(std::vector<Entry>& train, const std::string& dir, bool skip, std::vector<std::string>* skipped) {
  const int64_t n = static_cast<int64_t>(train.size());
  std::vector<int> w(n), h(n), comp(n), ok(n);
  parallel_for(0, n, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) ok[i] = stbi_info(train[i].path.c_str(), &w[i], &h[i], &comp[i]);
  });
  std::vector<std::string> errors(static_cast<size_t>(n));
  Geometry g{1, 0, 0};
  for (int64_t i = 0; i < n; ++i) {
    if (!ok[i]) {
      stbi_info(train[i].path.c_str(), &w[i], &h[i], &comp[i]);  // again, serially, for the reason
      errors[i] = detail::concat("not a decodable PNG/JPEG/BMP image (", stbi_failure_reason(), ")");
      continue;
    }
    if (comp[i] >= 3) g.channels = 3;
    if (g.height == 0) {
      g.height = h[i];
      g.width = w[i];
    }
  }
  drop_failed(train, errors, skip, skipped);
  LOWBIT_CHECK(!train.empty(), "error reading ", dir, ": none of its images decodes");
  return g;
}

// Decodes entries to C x H x W uint8 (converting channels, resizing), in parallel; drop_failed() on
// the ones that do not decode.
Dataset decode(std::vector<Entry> entries, const Geometry& g, const std::string& dir, bool skip,
               std::vector<std::string>* skipped) {
  Dataset ds;
  ds.name = "folder";
  ds.channels = g.channels;
  ds.height = g.height;
  ds.width = g.width;
  const int64_t n = static_cast<int64_t>(entries.size());
  const int64_t bytes = ds.image_bytes();
  LOWBIT_CHECK(bytes <= kMaxPixelsPerImage * 3 && n * bytes <= kMaxDatasetBytes, "error reading ", dir,
               ": ", n, " images of ", g.channels, "x", g.height, "x", g.width,
               " exceed the in-memory bound of ", kMaxDatasetBytes, " bytes");
  ds.images.resize(static_cast<size_t>(n * bytes));
  ds.labels.resize(static_cast<size_t>(n));
  std::vector<std::string> errors(static_cast<size_t>(n));
  const int desired = static_cast<int>(g.channels);
  parallel_for(0, n, 4, [&](int64_t b, int64_t e) {
    std::vector<uint8_t> planar;
    for (int64_t i = b; i < e; ++i) {
      ds.labels[i] = entries[i].label;
      const char* path = entries[i].path.c_str();
      int w = 0, h = 0, comp = 0;
      if (!stbi_info(path, &w, &h, &comp)) {
        errors[i] = detail::concat("not a decodable PNG/JPEG/BMP image (", stbi_failure_reason(), ")");
        continue;
      }
      if (int64_t{w} * h > kMaxPixelsPerImage) {
        errors[i] = detail::concat("image of ", w, "x", h, " exceeds ", kMaxPixelsPerImage, " pixels");
        continue;
      }
      // stbi's failure reason is thread-local in this stb_image (v2.27), so reading it here is safe.
      unsigned char* pixels = stbi_load(path, &w, &h, &comp, desired);
      if (!pixels) {
        errors[i] = detail::concat("not a decodable PNG/JPEG/BMP image (", stbi_failure_reason(), ")");
        continue;
      }
      const int64_t plane = int64_t{w} * h;
      planar.resize(static_cast<size_t>(plane * desired));
      for (int64_t p = 0; p < plane; ++p)  // HWC (stb) -> CHW
        for (int c = 0; c < desired; ++c) planar[c * plane + p] = pixels[p * desired + c];
      stbi_image_free(pixels);
      resize_bilinear(planar.data(), g.channels, h, w, ds.images.data() + i * bytes, g.height, g.width);
    }
  });
  if (std::all_of(errors.begin(), errors.end(), [](const std::string& e) { return e.empty(); })) return ds;
  drop_failed(entries, errors, skip, skipped);
  // Keep the images of the entries that decoded, in order.
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) continue;
    std::copy_n(ds.images.data() + i * bytes, bytes, ds.images.data() + kept * bytes);
    ds.labels[kept++] = ds.labels[i];
  }
  ds.images.resize(static_cast<size_t>(kept * bytes));
  ds.labels.resize(static_cast<size_t>(kept));
  return ds;
}

}  // namespace

void resize_bilinear(const uint8_t* src, int64_t channels, int64_t src_h, int64_t src_w,
                     uint8_t* dst, int64_t dst_h, int64_t dst_w) {
  if (src_h == dst_h && src_w == dst_w) {
    std::copy(src, src + channels * src_h * src_w, dst);
    return;
  }
  // Precomputed source taps per output row/column (shared by all channels).
  auto taps = [](int64_t dst_size, int64_t src_size, std::vector<int64_t>& i0, std::vector<int64_t>& i1,
                 std::vector<float>& frac) {
    i0.resize(dst_size);
    i1.resize(dst_size);
    frac.resize(dst_size);
    const double scale = static_cast<double>(src_size) / static_cast<double>(dst_size);
    for (int64_t d = 0; d < dst_size; ++d) {
      double s = (static_cast<double>(d) + 0.5) * scale - 0.5;
      s = std::clamp(s, 0.0, static_cast<double>(src_size - 1));
      const auto lo = static_cast<int64_t>(s);
      i0[d] = lo;
      i1[d] = std::min(lo + 1, src_size - 1);
      frac[d] = static_cast<float>(s - static_cast<double>(lo));
    }
  };
  std::vector<int64_t> y0, y1, x0, x1;
  std::vector<float> fy, fx;
  taps(dst_h, src_h, y0, y1, fy);
  taps(dst_w, src_w, x0, x1, fx);
  for (int64_t c = 0; c < channels; ++c) {
    const uint8_t* s = src + c * src_h * src_w;
    uint8_t* d = dst + c * dst_h * dst_w;
    for (int64_t y = 0; y < dst_h; ++y) {
      const uint8_t* r0 = s + y0[y] * src_w;
      const uint8_t* r1 = s + y1[y] * src_w;
      for (int64_t x = 0; x < dst_w; ++x) {
        const float top = r0[x0[x]] + fx[x] * (float(r0[x1[x]]) - float(r0[x0[x]]));
        const float bottom = r1[x0[x]] + fx[x] * (float(r1[x1[x]]) - float(r1[x0[x]]));
        const float v = top + fy[y] * (bottom - top);
        d[y * dst_w + x] = static_cast<uint8_t>(std::clamp(std::lround(v), 0l, 255l));
      }
    }
  }
}

Dataset read_image_folder(const std::string& dir, Split split, bool skip_bad_images) {
  Layout layout = scan(dir);
  std::vector<std::string> skipped;  // of the split returned only (a test split also reads the train files)
  if (layout.test_only) {
    LOWBIT_CHECK(split == Split::Test, "error reading ", dir, ": has ", fs::path(layout.test_dir).filename().string(),
                 "/ but no train/ (expected ", (fs::path(dir) / "train").string(),
                 "/<class>/ images to train on; a folder with only test/ or val/ is an evaluation set)");
    // Geometry and mean/std from the test images themselves (eval and infer replace the
    // normalization by the checkpoint's or model file's anyway).
    const Geometry g = train_geometry(layout.test, dir, skip_bad_images, &skipped);
    Dataset ds = decode(layout.test, g, dir, skip_bad_images, &skipped);
    LOWBIT_CHECK(ds.size() > 0, "error reading ", dir, ": none of its images decodes");
    const auto [mean, std] = channel_mean_std(ds);
    ds.class_names = layout.classes;
    ds.mean = mean;
    ds.std = std;
    ds.skipped = skipped;
    return ds;
  }
  if (split == Split::Test)
    LOWBIT_CHECK(layout.has_test, "error reading ", dir,
                 ": has train/ but neither test/ nor val/ (expected a test split folder)");
  std::vector<std::string>* train_skipped = split == Split::Train ? &skipped : nullptr;
  const Geometry g = train_geometry(layout.train, dir, skip_bad_images, train_skipped);
  Dataset train = decode(layout.train, g, dir, skip_bad_images, train_skipped);
  LOWBIT_CHECK(train.size() > 0, "error reading ", dir, ": none of its images decodes");
  const auto [mean, std] = channel_mean_std(train);
  Dataset ds = split == Split::Train ? std::move(train) : decode(layout.test, g, dir, skip_bad_images, &skipped);
  ds.class_names = layout.classes;
  ds.mean = mean;
  ds.std = std;
  ds.skipped = skipped;
  return ds;
}

}  // namespace lowbit
