// cifar10.h: the CIFAR-10 binary format. Each record is 1 label byte + 3072 pixel bytes
// (1024 R, 1024 G, 1024 B, each 32x32 row-major: already CHW). Train = data_batch_1.bin ..
// data_batch_5.bin (all five required, any record count each), test = test_batch.bin.
// Class names come from batches.meta.txt (one per non-empty line) when present, else the
// standard ten.
#pragma once
#include <string>

#include "core/data/dataset.h"

namespace lowbit {

constexpr int64_t kCifarRecordBytes = 1 + 3 * 32 * 32;

// Reads one split into a 3x32x32 Dataset named "cifar10" with class names and the fixed CIFAR-10
// mean/std. Throws naming the file on a missing file, a size that is not a whole number of
// records, or a label >= class count.
Dataset read_cifar10_split(const std::string& dir, Split split);

}  // namespace lowbit
