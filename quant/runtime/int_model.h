// int_model.h: IntModel, an exported low-bit model ready to serve (the C++ face of
// liblowbit-runtime; lowbit_runtime.h is the C face over the same object).
//
// Contract:
//  * IntModel::load / from_bytes read a model file (docs/model-format.md), validate everything
//    (quant/runtime/model_file.h) and throw ONE lowbit::Error naming the source and the problem.
//  * The model is immutable once loaded. Its settings (RuntimeOptions) are its own: the kernel
//    level (`isa`) and the thread count (`threads`: a TBB arena of that many threads that every
//    run of this model executes in). Nothing here reads or writes process-wide state, so
//    models with different settings coexist in one process.
//  * Concurrency: every const member may be called from several threads at once on one model;
//    each run uses a workspace of its own (pooled per model), so concurrent runs give results
//    bit-identical to the same runs made one after another. Runs share the model's arena: with
//    threads = T, at most T threads compute for this model at any moment.
//  * run: images NCHW float, normalized as in training: x = (pixel/255 - mean[c]) / std[c].
//    Logits are bit-identical at every kernel level and for every thread count. A NaN or
//    infinite input is an error (lowbit::Error naming the image, channel and pixel).
//  * run_u8: pixels 0..255 (HWC or CHW), normalized with the file's mean/std by exactly the
//    expression above, then run: equal bit for bit to run on the normalized floats.
//  * scores: softmax probabilities p_k = exp(l_k - max l) / sum_j exp(l_j - max l) (in double)
//    and the top k classes, best first (equal logits: lower index first).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lowbit {
class IntModel;
}
namespace lowbit::intq {
struct IntGraph;
// Internal access for lowbit's own tools (inspect, compare, bench): quant/runtime/int_model_internal.h.
const IntGraph& graph_of(const IntModel& model);
}  // namespace lowbit::intq

namespace lowbit {

struct RuntimeOptions {
  int threads = 0;  // threads of this model's runs; 0: all cores
  std::string isa;  // kernel level: "scalar", "avx2", "avx_vnni", "avx512", "amx"; "": the
                    // LOWBIT_ISA environment variable if set, else the best this CPU supports
};
// Throws lowbit::Error when threads is outside 0..4096 or isa is unknown or not supported by this
// CPU, naming the field as `name`.threads / `name`.isa (the C API passes "lowbit_options").
// IntModel's constructors call it first; a caller may call it before reading a model file.
void check_runtime_options(const RuntimeOptions& options, const char* name = "RuntimeOptions");

enum class PixelLayout { hwc, chw };

struct ClassScore {
  int64_t index = 0;
  std::string name;        // the file's class name, or the index in decimal when it has none
  double probability = 0;  // softmax (see above)
  float logit = 0;
};

struct LayerInfo {
  std::string name;     // the layer's name in the float model
  std::string kind;     // "conv" or "linear"
  int weight_bits = 0;  // bits of its weight grid
  int act_bits = 0;     // bits of its input codes
  std::string kernel;   // the kernel it runs with at this model's level, e.g. "avx2.pair_lut"
};

class IntModel {
 public:
  static IntModel load(const std::string& path, const RuntimeOptions& options = {});
  // `what` names the bytes in errors.
  static IntModel from_bytes(const void* data, size_t size, const RuntimeOptions& options = {},
                             const std::string& what = "model bytes");
  IntModel(IntModel&&) noexcept;
  IntModel& operator=(IntModel&&) noexcept;
  ~IntModel();

  // Input [channels, height, width] per image; classes of the output.
  int64_t channels() const;
  int64_t height() const;
  int64_t width() const;
  int64_t input_size() const { return channels() * height() * width(); }
  int64_t num_classes() const;
  std::string class_name(int64_t k) const;  // throws unless 0 <= k < num_classes()
  const std::vector<float>& mean() const;   // per channel, in pixel/255 units
  const std::vector<float>& std_dev() const;
  std::vector<LayerInfo> layers() const;    // the conv / linear layers in graph order
  std::string isa() const;                  // the level its kernels run at
  int threads() const;

  // images [n, C, H, W] -> logits [n, classes] (caller-owned buffers).
  void run(const float* images, int64_t n, float* logits) const;
  std::vector<float> run(const std::vector<float>& images) const;  // n = size / input_size()
  // pixels: n images of C*H*W bytes in `layout`.
  void run_u8(const uint8_t* pixels, int64_t n, PixelLayout layout, float* logits) const;
  // The normalization run_u8 applies: pixels -> [n, C, H, W] floats.
  void normalize(const uint8_t* pixels, int64_t n, PixelLayout layout, float* out) const;

  // One image's logits (num_classes() floats) -> probabilities (num_classes() doubles).
  void probabilities(const float* logits, double* out) const;
  // One image's logits -> the min(k, classes) best classes, best first.
  std::vector<ClassScore> top_k(const float* logits, int64_t k) const;

  struct Impl;  // opaque (int_model.cpp)

 private:
  explicit IntModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend const intq::IntGraph& intq::graph_of(const IntModel& model);
  friend struct IntModelAccess;
};

}  // namespace lowbit
