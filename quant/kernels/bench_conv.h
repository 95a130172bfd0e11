// bench_conv.h: the `lowbit bench conv` microbenchmark of the integer convolution kernels
// (conv_codes.h): every kernel of every level this CPU supports, on the layer shapes of the zoo's
// low-bit models (resnet20 and the convnet, 2- and 4-bit grids), one thread, operands as in a
// runtime chunk. Per kernel and layer: GMAC/s, MAC per cycle at the inferred clock, and the
// level's register-only multiply-accumulate probe (the int8 chain on avx2, vpdpbusd on the VNNI
// levels) measured beside it:
//   {"clock_ghz": ..., "probes": {"avx2": {"gmacs", "macs_per_cycle"}, ...},
//    "results": [{"layer", "wbits", "abits", "c", "h", "w", "kernel", "stride", "cout", "images",
//                 "level", "kernel_name", "gmacs", "macs_per_cycle", "vs_base"}, ...]}
// vs_base: the kernel's GMAC/s over the level's last (byte-multiply) kernel on the same layer.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace lowbit::kernels {

struct BenchConvOptions {
  int images = 16;             // images per call (a runtime chunk is ~4096 output pixels)
  int repeats = 5;             // interleaved samples per kernel (the median is reported)
  double min_sample_s = 0.03;  // each sample repeats the call until at least this long
  std::string filter;          // substring of "layer wWaA" ("" = all)
  std::string kernel;          // substring of the kernel names to run ("" = all), e.g. "avx2."
  bool quick = false;          // two small layers (tests)
};

nlohmann::json bench_conv(const BenchConvOptions& opt);
std::string format_bench_conv(const nlohmann::json& result);

}  // namespace lowbit::kernels
