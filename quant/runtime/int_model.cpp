// int_model.cpp: IntModel over the validated integer graph: its own kernel level, TBB arena and
// workspace pool (int_model.h has the contract).
#include "quant/runtime/int_model.h"

#include <tbb/task_arena.h>

#include <cmath>

#include "core/error.h"
#include "core/file_io.h"
#include "core/parallel.h"
#include "core/pixel_norm.h"
#include "quant/runtime/int_model_internal.h"
#include "quant/runtime/model_file.h"
#include "quant/runtime/scores.h"

namespace lowbit {

struct IntModel::Impl {
  intq::IntGraph graph;
  kernels::Isa isa = kernels::Isa::scalar;
  int threads = 1;
  std::unique_ptr<tbb::task_arena> arena;
  mutable intq::WorkspacePool pool;
};

namespace {

kernels::Isa options_isa(const RuntimeOptions& o) {
  return o.isa.empty() ? intq::default_isa() : kernels::parse_isa(o.isa);
}

std::unique_ptr<IntModel::Impl> make_impl(const std::string& bytes, const RuntimeOptions& o, const std::string& what) {
  check_runtime_options(o);
  auto impl = std::make_unique<IntModel::Impl>();
  impl->isa = options_isa(o);
  impl->graph = intq::parse_int_graph(bytes, what, impl->isa);
  impl->threads = o.threads > 0 ? o.threads : hardware_threads();
  impl->arena = std::make_unique<tbb::task_arena>(impl->threads);
  return impl;
}

// Every input finite, else one error naming the first bad element.
void check_finite(const float* x, int64_t n, int64_t c, int64_t h, int64_t w) {
  const int64_t per_image = c * h * w;
  for (int64_t i = 0; i < n * per_image; ++i)
    if (!std::isfinite(x[i])) {
      const int64_t img = i / per_image, r = i % per_image, ch = r / (h * w), p = r % (h * w);
      throw Error(detail::concat("IntModel::run: input image ", img, " has a non-finite value (", x[i], ") at channel ",
                                 ch, ", pixel (", p / w, ", ", p % w, "); inputs must be finite normalized floats"));
    }
}

}  // namespace

void check_runtime_options(const RuntimeOptions& o, const char* name) {
  LOWBIT_CHECK(o.threads >= 0 && o.threads <= 4096, name, ".threads must be 0 (all cores) to 4096, got ", o.threads);
  if (o.isa.empty()) return;
  bool supported = false;
  try {
    supported = kernels::isa_supported(kernels::parse_isa(o.isa));
  } catch (const Error&) {  // not a level's name
  }
  LOWBIT_CHECK(supported, name, ".isa '", o.isa, "' is not a kernel level this CPU supports (supported: ",
               kernels::supported_isa_names(), ")");
}

kernels::Isa IntModelAccess::isa(const IntModel& model) { return model.impl_->isa; }

IntModel::IntModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
IntModel::IntModel(IntModel&&) noexcept = default;
IntModel& IntModel::operator=(IntModel&&) noexcept = default;
IntModel::~IntModel() = default;

IntModel IntModel::load(const std::string& path, const RuntimeOptions& options) {
  return IntModel(make_impl(read_whole_file(path, "model file"), options, path));
}

IntModel IntModel::from_bytes(const void* data, size_t size, const RuntimeOptions& options, const std::string& what) {
  LOWBIT_CHECK(data != nullptr || size == 0, "IntModel::from_bytes: null data with size ", size);
  return IntModel(make_impl(std::string(static_cast<const char*>(data), size), options, what));
}

int64_t IntModel::channels() const { return impl_->graph.input_info().c; }
int64_t IntModel::height() const { return impl_->graph.input_info().h; }
int64_t IntModel::width() const { return impl_->graph.input_info().w; }
int64_t IntModel::num_classes() const { return impl_->graph.num_classes(); }
const std::vector<float>& IntModel::mean() const { return impl_->graph.mean; }
const std::vector<float>& IntModel::std_dev() const { return impl_->graph.std; }
std::string IntModel::isa() const { return kernels::isa_name(impl_->isa); }
int IntModel::threads() const { return impl_->threads; }

std::string IntModel::class_name(int64_t k) const {
  LOWBIT_CHECK(k >= 0 && k < num_classes(), "IntModel::class_name: class ", k, " is outside [0, ", num_classes(), ")");
  const auto& names = impl_->graph.class_names;
  return k < static_cast<int64_t>(names.size()) ? names[static_cast<size_t>(k)] : std::to_string(k);
}

std::vector<LayerInfo> IntModel::layers() const {
  std::vector<LayerInfo> out;
  for (const intq::IntOp& op : impl_->graph.ops)
    if (intq::op_kind_info(op.kind).weights)
      out.push_back({op.name, intq::op_kind_name(op.kind), op.weight_bits, op.act_bits, intq::op_kernel(op, impl_->isa)});
  return out;
}

void IntModel::run(const float* images, int64_t n, float* logits) const {
  LOWBIT_CHECK(n >= 0, "IntModel::run: image count ", n, " is negative");
  if (n == 0) return;
  LOWBIT_CHECK(images && logits, "IntModel::run: null images or logits");
  check_finite(images, n, channels(), height(), width());
  impl_->arena->execute([&] { intq::run_graph(impl_->graph, impl_->isa, impl_->pool, images, n, logits); });
}

std::vector<float> IntModel::run(const std::vector<float>& images) const {
  const int64_t per = input_size();
  LOWBIT_CHECK(static_cast<int64_t>(images.size()) % per == 0, "IntModel::run: ", images.size(),
               " floats is not a whole number of images of ", channels(), "x", height(), "x", width());
  const int64_t n = static_cast<int64_t>(images.size()) / per;
  std::vector<float> logits(static_cast<size_t>(n * num_classes()));
  run(images.data(), n, logits.data());
  return logits;
}

void IntModel::normalize(const uint8_t* pixels, int64_t n, PixelLayout layout, float* out) const {
  const int64_t C = channels(), P = height() * width();
  const auto& m = impl_->graph.mean;
  const auto& s = impl_->graph.std;
  // The data loader's expression (core/pixel_norm.h).
  for (int64_t img = 0; img < n; ++img) {
    const uint8_t* src = pixels + img * C * P;
    float* dst = out + img * C * P;
    for (int64_t c = 0; c < C; ++c) {
      const float mc = m[static_cast<size_t>(c)], sc = s[static_cast<size_t>(c)];
      for (int64_t p = 0; p < P; ++p) {
        const uint8_t v = layout == PixelLayout::hwc ? src[p * C + c] : src[c * P + p];
        dst[c * P + p] = normalize_pixel(v, mc, sc);
      }
    }
  }
}

void IntModel::run_u8(const uint8_t* pixels, int64_t n, PixelLayout layout, float* logits) const {
  LOWBIT_CHECK(n >= 0, "IntModel::run_u8: image count ", n, " is negative");
  if (n == 0) return;
  LOWBIT_CHECK(pixels && logits, "IntModel::run_u8: null pixels or logits");
  std::vector<float> x(static_cast<size_t>(n * input_size()));
  normalize(pixels, n, layout, x.data());
  run(x.data(), n, logits);
}

void IntModel::probabilities(const float* logits, double* out) const { softmax_probabilities(logits, num_classes(), out); }

std::vector<ClassScore> IntModel::top_k(const float* logits, int64_t k) const {
  std::vector<double> p(static_cast<size_t>(num_classes()));
  probabilities(logits, p.data());
  std::vector<ClassScore> out;
  for (int64_t c : top_classes(logits, num_classes(), k))
    out.push_back({c, class_name(c), p[static_cast<size_t>(c)], logits[c]});
  return out;
}

}  // namespace lowbit

namespace lowbit::intq {
const IntGraph& graph_of(const IntModel& model) { return model.impl_->graph; }
}  // namespace lowbit::intq
