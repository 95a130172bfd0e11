// idx.h: the IDX file format (MNIST, Fashion-MNIST), read through zlib so gzipped and plain
// files load the same way. An image file is big-endian u32 magic 0x00000803, count, rows, cols,
// then count*rows*cols ubyte pixels; a label file is magic 0x00000801, count, then count bytes.
// Split file names: train-{images-idx3,labels-idx1}-ubyte and t10k-..., each optionally ".gz".
#pragma once
#include <cstdint>
#include <string>

#include "core/data/dataset.h"

namespace lowbit {

// The existing file for DIR/base: DIR/base if present, else DIR/base.gz; throws naming both.
std::string resolve_idx_file(const std::string& dir, const std::string& base);

// Reads one split's images + labels into a 1-channel Dataset (name, class_names, mean, std left
// empty for the caller). Labels must be < num_classes when num_classes > 0. Throws lowbit::Error
// naming the file on a missing file, bad magic, implausible header, truncation or corrupt gzip.
// Reads progressively, so a hostile header cannot cause an allocation larger than the data.
Dataset read_idx_split(const std::string& dir, Split split, int64_t num_classes);

}  // namespace lowbit
