// cifar10.cpp: CIFAR-10 binary batches reader.
#include "core/data/cifar10.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace lowbit {

namespace {

std::vector<std::string> read_class_names(const std::filesystem::path& meta) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(meta, ec)) return cifar10_class_names();
  std::ifstream in(meta);
  LOWBIT_CHECK(in.good(), "error reading ", meta.string(), ": cannot open file");
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    const auto last = line.find_last_not_of(" \t\r");
    names.push_back(line.substr(first, last - first + 1));
  }
  LOWBIT_CHECK(!names.empty(), "error reading ", meta.string(), ": expected one class name per line, found none");
  LOWBIT_CHECK(names.size() <= 256, "error reading ", meta.string(), ": ", names.size(),
               " class names, expected at most 256 (labels are one byte)");
  return names;
}

// Appends the records of one batch file; the size is checked before anything is allocated.
void append_batch(const std::filesystem::path& path, int64_t num_classes, Dataset& ds) {
  std::error_code ec;
  LOWBIT_CHECK(std::filesystem::is_regular_file(path, ec), "error reading ", path.string(),
               ": missing file (expected a CIFAR-10 binary batch)");
  const uint64_t bytes = std::filesystem::file_size(path, ec);
  LOWBIT_CHECK(!ec, "error reading ", path.string(), ": cannot get file size");
  LOWBIT_CHECK(bytes > 0 && bytes % kCifarRecordBytes == 0, "error reading ", path.string(),
               ": truncated or corrupt: size ", bytes, " is not a positive multiple of the ",
               kCifarRecordBytes, "-byte record (1 label + 3072 pixel bytes)");
  const uint64_t records = bytes / kCifarRecordBytes;
  std::ifstream in(path, std::ios::binary);
  LOWBIT_CHECK(in.good(), "error reading ", path.string(), ": cannot open file");
  std::vector<uint8_t> raw(bytes);
  in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(bytes));
  LOWBIT_CHECK(static_cast<uint64_t>(in.gcount()) == bytes, "error reading ", path.string(),
               ": truncated: expected ", bytes, " bytes, got ", in.gcount());
  const size_t base = ds.images.size();
  ds.images.resize(base + records * (kCifarRecordBytes - 1));
  for (uint64_t r = 0; r < records; ++r) {
    const uint8_t* rec = raw.data() + r * kCifarRecordBytes;
    LOWBIT_CHECK(rec[0] < num_classes, "error reading ", path.string(), ": label ", int{rec[0]},
                 " in record ", r, " is out of range: expected < ", num_classes, " classes");
    ds.labels.push_back(rec[0]);
    std::copy(rec + 1, rec + kCifarRecordBytes, ds.images.begin() + base + r * (kCifarRecordBytes - 1));
  }
}

}  // namespace

Dataset read_cifar10_split(const std::string& dir, Split split) {
  namespace fs = std::filesystem;
  std::error_code ec;
  LOWBIT_CHECK(fs::is_directory(dir, ec), "error reading ", dir,
               ": missing directory (expected the CIFAR-10 binary batches)");
  Dataset ds;
  ds.name = "cifar10";
  ds.channels = 3;
  ds.height = 32;
  ds.width = 32;
  ds.class_names = read_class_names(fs::path(dir) / "batches.meta.txt");
  ds.mean = {0.4914f, 0.4822f, 0.4465f};
  ds.std = {0.2470f, 0.2435f, 0.2616f};
  if (split == Split::Train) {
    for (int b = 1; b <= 5; ++b)
      append_batch(fs::path(dir) / ("data_batch_" + std::to_string(b) + ".bin"), ds.num_classes(), ds);
  } else {
    append_batch(fs::path(dir) / "test_batch.bin", ds.num_classes(), ds);
  }
  return ds;
}

}  // namespace lowbit
