// quantizer.cpp: the Quantizer base (warm-up switch, once-only statistics init, observers, the
// data-parallel deferral of a weight quantizer's parameter gradients) and QuantizedCodes.
#include "quant/quantizer.h"

#include "core/autograd.h"
#include "core/collectives.h"
#include "core/error.h"

namespace lowbit {

void set_quantization_enabled(Module& model, bool enabled) {
  for (auto& [name, m] : model.named_modules())
    if (auto* q = dynamic_cast<Quantizer*>(m.get())) q->set_enabled(enabled);
}

bool quantization_enabled(Module& model) {
  for (auto& [name, m] : model.named_modules())
    if (auto* q = dynamic_cast<Quantizer*>(m.get()); q && !q->enabled()) return false;
  return true;
}

const char* grid_name(CodeGrid grid) { return grid == CodeGrid::uniform ? "uniform" : "odd_symmetric"; }

float QuantizedCodes::value(uint8_t code) const {
  if (grid == CodeGrid::odd_symmetric) {
    const float n = static_cast<float>((1 << bits) - 1);
    return scale * (2.f * code - n) / n;
  }
  return scale * static_cast<float>(static_cast<int32_t>(code) - zero_point);
}

Tensor QuantizedCodes::dequantize() const {
  Tensor t = Tensor::empty(shape);
  float* d = t.data();
  for (size_t i = 0; i < codes.size(); ++i) d[i] = value(codes[i]);
  return t;
}

void check_bits(const char* method, int bits, int lo) {
  LOWBIT_CHECK(bits >= lo && bits <= 8, method, " quantizer: bits must be in [", lo, ", 8], got ", bits);
}

Quantizer::Quantizer(int bits, QuantTarget target, bool data_init)
    : bits_(bits), target_(target), data_init_(data_init) {
  if (data_init_) register_buffer("initialized", initialized_, Tensor::zeros({1}));
}

bool Quantizer::initialized() const { return !data_init_ || initialized_->data()[0] != 0.f; }

void Quantizer::mark_initialized() {
  if (data_init_) initialized_->data()[0] = 1.f;
}

Tensor Quantizer::forward(const Tensor& x) {
  if (observer_) observer_(x);
  if (!enabled_) return x;
  if (!initialized()) {
    NoGradGuard no_grad;
    // Under DataParallel each rank holds a contiguous slice of the global batch, in rank order
    // (core/data/loader.h): an activation init computed on the slices gathered in that order sees
    // exactly the batch one process sees, so N ranks give one process's values bit for bit. Weight
    // inits see the weights, identical on every rank already.
    if (replicas_ && target_ == QuantTarget::activation)
      initialize(allgather_rows(*replicas_, x));
    else
      initialize(x);
    mark_initialized();
    // The values agree already; the broadcast keeps the replicas identical even for an init that
    // is not a pure function of its input (a program's own quantizer).
    if (replicas_) {
      auto state = named_parameters();
      for (auto& b : named_buffers()) state.push_back(std::move(b));
      broadcast_tensors(*replicas_, state, detail::concat(type_name(), ": quantizer state differs between ranks"));
    }
  }
  return quantize(x);
}

std::optional<FusedActivation> Quantizer::fused_activation() const {
  if (!enabled_ || !initialized() || observer_) return std::nullopt;
  return fused_quantize();
}

void Quantizer::attach_replicas(const Replicas* replicas) {
  replicas_ = replicas && data_init_ && replicas->comm.size() > 1 ? &replicas->comm : nullptr;
  gradient_replicas_ = replicas && target_ == QuantTarget::weight && replicas->comm.size() > 1;
  if (!gradient_replicas_) {
    // Alone again with gradients still kept (a backward without its reduce_gradients): this rank's
    // own g gives what a lone process's backward would have added.
    auto kept = std::move(*deferred_);
    deferred_->clear();
    for (auto& d : kept) d.add_param_grads(d.g);
  }
}

ParamGradientDeferral Quantizer::param_gradient_deferral() const {
  return [kept = deferred_](const Tensor& g, std::function<void(const Tensor&)> add_param_grads) {
    kept->push_back({g, std::move(add_param_grads)});
  };
}

void Quantizer::finish_gradients(const ReplicaStep& step) {
  if (deferred_->empty()) return;  // the same on every rank: each ran the same backward
  auto kept = std::move(*deferred_);
  deferred_->clear();
  std::vector<Tensor> g;
  // average_tensors writes in place: a g whose storage someone else still holds is copied first.
  for (auto& d : kept) g.push_back(d.g.storage_unique() ? d.g : d.g.clone());
  average_tensors(step.comm, g, step.local_samples, step.total_samples, step.bucket_bytes);
  for (size_t i = 0; i < kept.size(); ++i) kept[i].add_param_grads(g[i]);
}

void Quantizer::set_clip(float) {
  throw Error(detail::concat(method(), " quantizer: a fixed clip value cannot be set (only activation "
                             "quantizers with a clip support calibration)"));
}

ActCodeSpec Quantizer::code_spec() const {
  throw Error(detail::concat(method(), " quantizer (", type_name(),
                             ") has no integer activation rule: it is not an activation quantizer"));
}

std::vector<std::pair<std::string, double>> Quantizer::state_scalars() const {
  std::vector<std::pair<std::string, double>> out;
  for (auto& [name, t] : named_parameters())
    if (t.numel() == 1) out.emplace_back(name, t.data()[0]);
  return out;
}

}  // namespace lowbit
