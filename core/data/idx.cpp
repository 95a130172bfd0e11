// idx.cpp: IDX reader (gzopen/gzread: reads .gz and plain files transparently).
#include "core/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"

namespace lowbit {

namespace {

constexpr uint32_t kImageMagic = 0x00000803;  // ubyte, 3 dimensions
constexpr uint32_t kLabelMagic = 0x00000801;  // ubyte, 1 dimension
// Sanity bounds checked before anything is sized from the header.
constexpr uint64_t kMaxCount = 1ull << 31;
constexpr uint64_t kMaxSide = 1ull << 15;
constexpr uint64_t kMaxTotalBytes = 1ull << 34;  // 16 GiB

// RAII gzFile; every error message starts with "error reading PATH: ".
class GzReader {
 public:
  explicit GzReader(std::string path) : path_(std::move(path)) {
    file_ = gzopen(path_.c_str(), "rb");
    LOWBIT_CHECK(file_ != nullptr, "error reading ", path_, ": cannot open file");
  }
  ~GzReader() { gzclose(file_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  const std::string& path() const { return path_; }

  uint32_t read_u32_be(const char* what) {
    unsigned char b[4];
    const uint64_t got = read_into(b, 4, what, 0);
    LOWBIT_CHECK(got == 4, "error reading ", path_, ": truncated header: expected 4 bytes of ", what,
                 ", got ", got);
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
  }

  // Reads exactly `expected` payload bytes, growing the buffer only as data actually arrives.
  std::vector<uint8_t> read_payload(uint64_t expected, const char* what) {
    std::vector<uint8_t> out;
    constexpr uint64_t kChunk = 1ull << 24;
    while (out.size() < expected) {
      const uint64_t old = out.size();
      const uint64_t want = std::min(kChunk, expected - old);
      out.resize(old + want);
      const uint64_t got = read_into(out.data() + old, want, what, old);
      out.resize(old + got);
      LOWBIT_CHECK(got == want, "error reading ", path_, ": truncated: expected ", expected, " ",
                   what, " bytes, got ", out.size());
    }
    return out;
  }

 private:
  // gzread in pieces below INT_MAX; a zlib data error (corrupt gzip) throws, EOF returns short.
  uint64_t read_into(void* dst, uint64_t n, const char* what, uint64_t already) {
    uint64_t total = 0;
    while (total < n) {
      const unsigned piece = static_cast<unsigned>(std::min<uint64_t>(n - total, 1u << 30));
      const int got = gzread(file_, static_cast<char*>(dst) + total, piece);
      if (got < 0) {
        int code = 0;
        const char* msg = gzerror(file_, &code);
        throw Error(detail::concat("error reading ", path_, ": corrupt gzip data (", msg, ") after ",
                                   already + total, " bytes of ", what));
      }
      total += static_cast<uint64_t>(got);
      if (static_cast<unsigned>(got) < piece) {
        int code = 0;
        const char* msg = gzerror(file_, &code);
        // Z_BUF_ERROR = the gzip stream ended early (truncated .gz): reported as truncation.
        if (code != Z_OK && code != Z_BUF_ERROR)
          throw Error(detail::concat("error reading ", path_, ": corrupt gzip data (", msg,
                                     ") after ", already + total, " bytes of ", what));
        break;
      }
    }
    return total;
  }

  std::string path_;
  gzFile file_ = nullptr;
};

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

std::string resolve_idx_file(const std::string& dir, const std::string& base) {
  namespace fs = std::filesystem;
  const fs::path plain = fs::path(dir) / base;
  const fs::path gz = fs::path(dir) / (base + ".gz");
  std::error_code ec;
  if (fs::is_regular_file(plain, ec)) return plain.string();
  if (fs::is_regular_file(gz, ec)) return gz.string();
  throw Error(detail::concat("error reading ", plain.string(), "[.gz]: missing file: expected ",
                             plain.string(), " or ", gz.string()));
}

Dataset read_idx_split(const std::string& dir, Split split, int64_t num_classes) {
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  const std::string image_path = resolve_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string label_path = resolve_idx_file(dir, prefix + "-labels-idx1-ubyte");

  Dataset ds;
  {
    GzReader in(image_path);
    const uint32_t magic = in.read_u32_be("magic number");
    LOWBIT_CHECK(magic == kImageMagic, "error reading ", image_path, ": bad magic number ",
                 hex32(magic), ", expected ", hex32(kImageMagic), " (IDX ubyte image file)");
    const uint64_t count = in.read_u32_be("image count");
    const uint64_t rows = in.read_u32_be("row count");
    const uint64_t cols = in.read_u32_be("column count");
    LOWBIT_CHECK(count <= kMaxCount && rows >= 1 && cols >= 1 && rows <= kMaxSide && cols <= kMaxSide &&
                     count * rows * cols <= kMaxTotalBytes,
                 "error reading ", image_path, ": implausible header: ", count, " images of ", rows,
                 "x", cols, " (expected at most ", kMaxCount, " images, sides 1..", kMaxSide, ", ",
                 kMaxTotalBytes, " bytes in all)");
    ds.channels = 1;
    ds.height = static_cast<int64_t>(rows);
    ds.width = static_cast<int64_t>(cols);
    ds.images = in.read_payload(count * rows * cols, "image");
  }
  const uint64_t image_count = ds.images.size() / static_cast<uint64_t>(ds.height * ds.width);
  {
    GzReader in(label_path);
    const uint32_t magic = in.read_u32_be("magic number");
    LOWBIT_CHECK(magic == kLabelMagic, "error reading ", label_path, ": bad magic number ",
                 hex32(magic), ", expected ", hex32(kLabelMagic), " (IDX ubyte label file)");
    const uint64_t count = in.read_u32_be("label count");
    LOWBIT_CHECK(count == image_count, "error reading ", label_path, ": label/image count mismatch: ",
                 count, " labels but ", image_path, " has ", image_count, " images");
    const std::vector<uint8_t> raw = in.read_payload(count, "label");
    ds.labels.assign(raw.begin(), raw.end());
  }
  if (num_classes > 0) {
    for (size_t i = 0; i < ds.labels.size(); ++i)
      LOWBIT_CHECK(ds.labels[i] < num_classes, "error reading ", label_path, ": label ",
                   ds.labels[i], " at index ", i, " is out of range: expected < ", num_classes,
                   " classes");
  }
  return ds;
}

}  // namespace lowbit
