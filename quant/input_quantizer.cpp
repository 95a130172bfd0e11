// input_quantizer.cpp: signed symmetric 8-bit quantizer for the network input (LSQ's grid with
// a fixed, statistics-driven step).
#include "quant/input_quantizer.h"

#include <cmath>

#include "core/collectives.h"
#include "core/error.h"
#include "quant/fused.h"
#include "quant/lsq.h"

namespace lowbit {

SignedInputQuantizer::SignedInputQuantizer(int bits) : Quantizer(bits, QuantTarget::activation, true) {
  check_bits("input", bits, 2);
  register_buffer("max_abs", max_abs, Tensor::ones({1}));
  register_buffer("scale", scale, Tensor::full({1}, 1.f / static_cast<float>((1 << (bits - 1)) - 1)));
}

std::string SignedInputQuantizer::describe() const {
  return detail::concat("SignedInputQuantizer(", bits(), "b, max_abs=", max_abs->data()[0], ")");
}

void SignedInputQuantizer::set_clip(float clip) {
  LOWBIT_CHECK(clip > 0.f && std::isfinite(clip), "input quantizer: clip must be positive and finite, got ", clip);
  max_abs->data()[0] = clip;
  scale->data()[0] = clip / static_cast<float>((1 << (bits() - 1)) - 1);
  mark_initialized();
}

void SignedInputQuantizer::initialize(const Tensor& x) {
  set_clip(std::max(quant_detail::max_abs(x.data(), x.numel()), 1e-6f));
}

Tensor SignedInputQuantizer::quantize(const Tensor& x) {
  if (is_training()) {
    const float m = quant_detail::max_abs(x.data(), x.numel());
    if (m > max_abs->data()[0]) set_clip(m);
  }
  const int q = (1 << (bits() - 1)) - 1;
  return lsq_quantize(x, scale, q, q, 1.0);
}

QuantizedCodes SignedInputQuantizer::codes(const Tensor& x) const {
  const int q = (1 << (bits() - 1)) - 1;
  const float st = scale->data()[0];
  QuantizedCodes out;
  out.shape = x.shape();
  out.bits = bits();
  out.scale = st;
  out.zero_point = q;
  out.is_signed = true;
  out.codes.resize(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i)
    out.codes[i] = static_cast<uint8_t>(
        quant_detail::round_half_even(std::min(std::max(x.data()[i] / st, -static_cast<float>(q)), static_cast<float>(q))) + q);
  return out;
}

std::vector<std::pair<std::string, double>> SignedInputQuantizer::state_scalars() const {
  return {{"max_abs", max_abs->data()[0]}};
}

QuantizerMethod input_method() {
  return {"input", nullptr, [](int bits, const nlohmann::json&) { return std::make_shared<SignedInputQuantizer>(bits); },
          &act_code_rule("input"), {}, {}};
}

}  // namespace lowbit

namespace lowbit {

void SignedInputQuantizer::attach_replicas(const Replicas* replicas) {
  Quantizer::attach_replicas(replicas);
  if (!replicas || replicas->comm.size() == 1) {
    set_observer(nullptr);
    return;
  }
  // Give it the max over the global batch before it looks at the local one (its own update then
  // finds nothing larger), so its scale is the one a single process would use.
  Comm* comm = &replicas->comm;
  set_observer([this, comm](const Tensor& x) {
    if (!enabled() || !is_training()) return;
    const float global = std::max(allreduce_max(*comm, quant_detail::max_abs(x.data(), x.numel())), 1e-6f);
    if (!initialized() || global > max_abs->data()[0]) set_clip(global);
  });
}

}  // namespace lowbit
