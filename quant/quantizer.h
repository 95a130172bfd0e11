// quantizer.h: the Quantizer contract every QAT method implements, the integer codes it exports,
// the integer rule of activation methods (ActCodeRule: what export folds and the runtime runs),
// and the float warm-up switch (per quantizer; set_quantization_enabled(model, on) sets a model's).
//
// A Quantizer is a Module whose forward fake-quantizes a tensor (the weight of a layer or the
// activation that feeds it): y = Q(x; params), with the straight-through backward documented in
// ../shared/reference/quant-methods.md and in each method's header. Forward and backward are
// single fused passes over the data (autograd ops with custom closures, see quant/fused.h).
//  * Learned parameters (PACT alpha, QIL c/d/gamma, LSQ s) are ordinary Parameters: they get
//    .grad, appear in named_parameters() and state_dict(), and are allreduced like weights.
//  * Statistics (SAWB alpha_w, the "initialized" flag of data-driven inits, QIL's feature count)
//    are buffers: checkpointed, never trained.
//  * While quantization is disabled (set_quantization_enabled(model, false): the float warm-up
//    phase), forward returns x unchanged. The first forward with quantization enabled runs the
//    method's statistics init (first batch / current weights) once; the flag is a buffer, so a
//    resumed run does not re-initialise. Under DataParallel (attach_replicas) an activation init
//    sees the global batch: the ranks' slices gathered in rank order (core/collectives.h
//    allgather_rows), so N ranks compute one process's values bit for bit; the result is then
//    broadcast from rank 0 as well, so the replicas stay identical whatever the init does.
//  * Under DataParallel a WEIGHT quantizer's learned parameters (LSQ s, QIL c/d/gamma) get their
//    gradient from the global weight gradient: their gradient is a sum over the weights of
//    coefficient_i x g_i (g = dL/d(quantized weight)), and a per-rank sum averaged over the ranks
//    is the same number as one process's sum only in exact arithmetic. So while it runs as a replica
//    (attach_replicas with several ranks) its backward keeps this rank's g (defer_param_gradients,
//    param_gradient_deferral) instead of adding to the parameters' .grad; finish_gradients, after
//    DataParallel averaged the parameter gradients, averages g with the same arithmetic
//    (average_tensors), which gives one process's g bit for bit, and runs the method's parameter-
//    gradient function on it: the function the one-process backward runs, so 2 ranks add the bits
//    one process adds (docs/distributed.md). A method whose weight gradient is not g times an exact
//    0/1 mask (QIL: g * slope, rounded) defers a leaf weight's gradient the same way, since the
//    average of rounded products is not the rounded product of the average. Activation quantizers
//    sum over the batch already.
//  * codes(x) gives the integer codes + scale + grid of Q(x) for export (see QuantizedCodes).
//  * An activation quantizer also has an integer meaning that does not need the module: its
//    code_spec() (method, bits, two float parameters: what a model file's quantize op stores)
//    and its method's ActCodeRule, which turns floats into the same codes, checks a spec read
//    from a file and gives the affine form export folds into a GEMM epilogue. The method's file
//    implements the training side and registers it once (quant/registry.h); the rules live in the
//    runtime (quant/runtime/act_code.h), which needs no Module.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/fused_activation.h"
#include "layers/module.h"
#include "quant/runtime/act_code.h"  // ActCodeSpec, ActCodeRule: the Module-free integer side

namespace lowbit {

enum class QuantTarget { weight, activation };

// How a code maps back to a real value (reference, "Integer inference mapping"), n = 2^bits - 1:
//   uniform:        real = scale * (code - zero_point)   (activations: zero_point 0; signed weight
//                   grids with a zero level store code = signed code + zero_point)
//   odd_symmetric:  real = scale * (2*code - n) / n      (DoReFa, SAWB weights: no zero level)
enum class CodeGrid { uniform, odd_symmetric };
const char* grid_name(CodeGrid grid);  // "uniform" / "odd_symmetric"

struct QuantizedCodes {
  Shape shape;
  std::vector<uint8_t> codes;  // one per element, row-major
  int bits = 8;
  CodeGrid grid = CodeGrid::uniform;
  float scale = 1.f;
  int32_t zero_point = 0;
  bool is_signed = false;  // the real values may be negative

  float value(uint8_t code) const;  // the real value of a code (formulas above)
  Tensor dequantize() const;        // every code's real value: equals the forward's Q(x)
};

// The warm-up switch of every Quantizer in `model` (each quantizer's own, default on). Off: they
// pass their input through. quantization_enabled: true when every quantizer of `model` is on.
void set_quantization_enabled(Module& model, bool enabled);
bool quantization_enabled(Module& model);

// How a weight quantizer's backward hands over its learned parameters' gradient while it runs as a
// replica (see top): defer(g, add_param_grads) keeps this rank's g, the gradient w.r.t. the
// quantized weight, and add_param_grads, the method's parameter-gradient function bound to this
// forward's values; add_param_grads(g_global) later adds (+=) the parameters' gradients for the
// averaged g. Empty: backward adds them itself (one process).
using ParamGradientDeferral = std::function<void(const Tensor& g, std::function<void(const Tensor& g)> add_param_grads)>;

// One learned parameter of a quantizer and how the optimizer must treat it (make_param_groups).
struct QuantParamSpec {
  std::string name;  // local name, e.g. "alpha"
  Tensor tensor;
  std::string kind;  // group kind, e.g. "pact.alpha", "qil.d", "lsq.s"
  double min_value;  // clamp after each optimizer step
  bool weight_decay; // L2 on the parameter with the weights' lambda (PACT alpha)
  // Gradient scale applied by the optimizer (outside the raw formula); null = 1. Evaluated when
  // the groups are built and again after every step (it may depend on the first batch's shape).
  std::function<double()> grad_scale;
};

class Quantizer : public Module {
 public:
  // data_init: the method initialises from data on its first enabled forward (registers the
  // "initialized" buffer).
  Quantizer(int bits, QuantTarget target, bool data_init);

  // Pass-through while disabled; otherwise statistics init (once), then quantize(x).
  Tensor forward(const Tensor& x) final;
  // forward(x) as an activation the consuming op applies itself (core/fused_activation.h;
  // QuantConv2d passes it to conv2d): only while forward is quantize(x) alone (enabled,
  // initialized, no observer), and only for a method that provides one (fused_quantize).
  std::optional<FusedActivation> fused_activation() const;

  virtual std::string method() const = 0;  // "pact", "sawb", "dorefa", "qil", "lsq", "input"
  // Every quantizer shares the layer-type row "Quantizer" (quant/layer_types.h): it is written as
  // {"method", "target", "bits", "options"} and rebuilt by the quantizer registry.
  std::string config_type() const final { return "Quantizer"; }
  // The factory options (quant/registry.h) that make_quantizer(method(), target(), bits(), options)
  // needs to build this quantizer's configuration again ({} when the method reads none).
  virtual nlohmann::json factory_options() const { return nlohmann::json::object(); }
  int bits() const { return bits_; }
  int levels() const { return (1 << bits_) - 1; }  // n = 2^b - 1
  QuantTarget target() const { return target_; }
  bool initialized() const;
  // This quantizer's warm-up switch (see set_quantization_enabled).
  void set_enabled(bool enabled) { enabled_ = enabled; }
  bool enabled() const { return enabled_; }
  // Data parallelism: a data-driven activation init runs on the gathered global batch, then rank
  // 0's parameters and buffers are broadcast.
  // Weight quantizers as replicas also defer their learned parameters' gradient (see top); a
  // detach adds what is still deferred from this rank's own g, as one process would.
  void attach_replicas(const Replicas* replicas) override;
  // Collective (DataParallel, once per step after the gradient average): averages the kept g's over
  // the ranks (average_tensors with the step's weights) and runs their parameter-gradient functions.
  void finish_gradients(const ReplicaStep& step) override;

  // The integer codes of Q(x) under the current parameters (eval-mode statistics).
  virtual QuantizedCodes codes(const Tensor& x) const = 0;
  // Activation quantizers: the spec of their integer rule (export). The base throws lowbit::Error.
  virtual ActCodeSpec code_spec() const;
  // False when the weight grid is normalised to [-1, 1] (DoReFa, QIL): a layer without a BN after
  // it (the last) needs a scale-keeping grid instead (quant/policy.h).
  virtual bool keeps_scale() const { return true; }
  // Fix the clip value (the largest representable |x|) from calibration, and mark initialized.
  // Activation quantizers implement it; the base throws lowbit::Error naming the method.
  virtual void set_clip(float clip);
  // Learned parameters with their optimizer treatment (empty for statistics-only methods).
  virtual std::vector<QuantParamSpec> param_specs() { return {}; }
  // Scalars for per-epoch logging (learned parameters and statistics), by local name.
  virtual std::vector<std::pair<std::string, double>> state_scalars() const;

  // Called with every input while set (calibration collects histograms through it).
  void set_observer(std::function<void(const Tensor&)> observer) { observer_ = std::move(observer); }

 protected:
  virtual Tensor quantize(const Tensor& x) = 0;
  virtual std::optional<FusedActivation> fused_quantize() const { return std::nullopt; }
  virtual void initialize(const Tensor& /*x*/) {}  // statistics init, under NoGradGuard
  void mark_initialized();
  // True while this is a weight quantizer running as one of several replicas: a method with learned
  // parameters then passes param_gradient_deferral() to its fused op instead of an empty deferral.
  bool defers_param_gradients() const { return gradient_replicas_; }
  // The deferral that keeps (g, add_param_grads) until finish_gradients (it holds no pointer to
  // this module, so a graph may outlive it).
  ParamGradientDeferral param_gradient_deferral() const;

 private:
  struct DeferredGradient {
    Tensor g;
    std::function<void(const Tensor&)> add_param_grads;
  };
  int bits_;
  QuantTarget target_;
  bool data_init_;
  Parameter initialized_;  // buffer [1]: 1 once the statistics init ran (or a clip was set)
  std::function<void(const Tensor&)> observer_;
  bool enabled_ = true;
  Comm* replicas_ = nullptr;  // set while a DataParallel wraps the model (several ranks)
  bool gradient_replicas_ = false;  // a weight quantizer wrapped by a DataParallel of several ranks
  // What backward kept for finish_gradients (shared with the backward closures).
  std::shared_ptr<std::vector<DeferredGradient>> deferred_ = std::make_shared<std::vector<DeferredGradient>>();
};

// Checks 1 <= bits <= 8 (codes are uint8), naming the method.
void check_bits(const char* method, int bits, int lo = 1);

}  // namespace lowbit
