// module.h: Module, the base of every layer and model (PyTorch C++ frontend shape).
// A module owns Parameters (trainable tensors: weights, BN gamma/beta, quantizer clip values),
// buffers (state that is saved but not trained: BN running stats, SAWB's alpha_w) and child
// modules, each registered under a name; named_parameters() walks the tree with dotted names
// ("layer1.0.conv1.weight"). Modules are created with std::make_shared and never copied.
//
// Avoiding PyTorch's footgun: members are `Parameter`s, and assigning a tensor to one
// (`conv->weight = Tensor::randn(...)`) writes into the registered tensor, so the module, its
// state_dict and any optimizer holding the parameter all keep seeing the same tensor.
//
// Data parallelism (layers/data_parallel.h) reaches every module of a tree through three hooks, so
// it works for any Module without knowing its type: attach_replicas() tells a module that it now
// runs as one of several identical replicas (or alone again), finish_gradients() runs once per
// step after the parameter gradients were averaged, sync_statistics() asks it once per epoch to
// make its own statistics agree. A module whose state is not a pure function of the (identical)
// parameters and the global gradient overrides them: BatchNorm2d (running statistics, sync-BN), a
// quantizer with a data-driven init or a running observer, a weight quantizer with learned
// parameters (its parameters' gradient from the global weight gradient, quant/quantizer.h).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"
#include "core/state_dict.h"
#include "core/tensor.h"

namespace lowbit {

class Comm;

// The replicas a module belongs to while wrapped by DataParallel.
struct Replicas {
  Comm& comm;                    // every replica is one rank of comm
  bool sync_batch_norm = false;  // BatchNorm statistics over the global batch (sync-BN)
};

// One data-parallel step as Module::finish_gradients sees it: the weights of DataParallel's
// gradient average grad := sum_r (n_r / N_tot) * grad_r, to average a rank-local quantity with
// exactly that arithmetic (core/collectives.h average_tensors(comm, tensors, local_samples,
// total_samples, bucket_bytes)).
struct ReplicaStep {
  Comm& comm;
  int64_t local_samples;  // n_r: this rank's samples in the step
  int64_t total_samples;  // N_tot: the global batch
  int64_t bucket_bytes;   // cap of one allreduce
};

// A registered tensor slot. Assignment keeps the tensor's identity (copies data in place when
// the shape matches, otherwise re-points the same TensorImpl at the new data).
class Parameter {
 public:
  Parameter() = default;
  Parameter(const Parameter&) = delete;
  Parameter& operator=(const Parameter&) = delete;
  Parameter& operator=(const Tensor& value);
  const Tensor& tensor() const { return tensor_; }
  operator const Tensor&() const { return tensor_; }
  const Tensor* operator->() const { return &tensor_; }
  Tensor* operator->() { return &tensor_; }
  bool defined() const { return tensor_.defined(); }

 private:
  friend class Module;
  Tensor tensor_;
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  // relu(forward(x)); a module that can apply the ReLU in its own pass overrides this
  // (BatchNorm2d). Sequential and BasicBlock call it for a child followed by a ReLU, so every
  // model built from them gets the fusion; a custom forward can call it too.
  virtual Tensor forward_relu(const Tensor& x);
  // Short type name ("Conv2d") and a one-line description of the configuration.
  virtual std::string type_name() const = 0;
  virtual std::string describe() const { return type_name(); }
  // The row of the layer-type table (layers/layer_config.h) that writes and rebuilds this module's
  // configuration. Default: its type name; a family sharing one row overrides it (every Quantizer:
  // "Quantizer", rebuilt through the quantizer registry).
  virtual std::string config_type() const { return type_name(); }

  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  // The random streams the modules draw from while running (Dropout's masks), dotted names
  // ("3.rng"): what a training checkpoint saves and resume restores, besides the state dict.
  std::vector<std::pair<std::string, Generator*>> named_generators();
  // This module ("") and all descendants, depth first, with dotted names.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules();
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children() const;
  // Replace a direct child by name (used to convert layers, e.g. Conv2d -> QuantConv2d).
  // Throws when the new module does not fit the slot's declared type.
  void replace_child(const std::string& name, std::shared_ptr<Module> module);

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  int64_t parameter_count() const;

  // Data-parallel hooks (see top), called on every module of the tree (this one, then children).
  // replicas: the group this module now belongs to; nullptr: it runs alone again. The pointee
  // outlives the attachment. Default: nothing to do (state follows from the parameters).
  virtual void attach_replicas(const Replicas* replicas) { (void)replicas; }
  // Collective, once per training step on every replica, right after DataParallel averaged the
  // parameter gradients (reduce_gradients, before the optimizer step): a module that kept a
  // rank-local quantity in backward instead of summing it into a parameter's .grad averages it over
  // the ranks now (step's weights) and adds (+=) the gradient it gives. Default: nothing kept.
  virtual void finish_gradients(const ReplicaStep& step) { (void)step; }
  // Collective, once per epoch on every replica: make this module's own statistics identical on
  // every rank of `comm` (e.g. average per-rank running statistics). Default: nothing to sync.
  virtual void sync_statistics(Comm& comm) { (void)comm; }

  // Parameters and buffers under their dotted names.
  StateDict state_dict() const;
  // Copies values in place (tensor identities are kept). strict: every key must match both ways.
  void load_state_dict(const StateDict& state, bool strict = true);

 protected:
  // Register `slot` (a member) as a trainable parameter initialised to `value`.
  void register_parameter(const std::string& name, Parameter& slot, const Tensor& value);
  // Register `slot` as a buffer (saved, not trained).
  void register_buffer(const std::string& name, Parameter& slot, const Tensor& value);
  // Register `slot` (a member) as a random stream used at run time (see named_generators()).
  void register_generator(const std::string& name, Generator& slot);
  // Register a child module held in a member shared_ptr<M>.
  template <class M>
  std::shared_ptr<M>& register_module(const std::string& name, std::shared_ptr<M>& slot,
                                      std::shared_ptr<M> module) {
    slot = std::move(module);
    ChildSlot c;
    c.name = name;
    c.get = [&slot] { return std::static_pointer_cast<Module>(slot); };
    c.set = [&slot, name](std::shared_ptr<Module> m) {
      auto typed = std::dynamic_pointer_cast<M>(m);
      if (!typed) throw_bad_child(name, m ? m->type_name() : "null");
      slot = std::move(typed);
    };
    add_child(std::move(c));
    return slot;
  }
  // Called after train()/eval() changes the mode of this module.
  virtual void on_mode_change() {}

 private:
  struct ChildSlot {
    std::string name;
    std::function<std::shared_ptr<Module>()> get;
    std::function<void(std::shared_ptr<Module>)> set;
  };
  void add_child(ChildSlot slot);
  [[noreturn]] static void throw_bad_child(const std::string& name, const std::string& type);
  void collect(const std::string& prefix, bool params, std::vector<std::pair<std::string, Tensor>>& out) const;

  std::vector<std::pair<std::string, Parameter*>> params_;
  std::vector<std::pair<std::string, Parameter*>> buffers_;
  std::vector<std::pair<std::string, Generator*>> generators_;
  std::vector<ChildSlot> children_;
  bool training_ = true;
};

}  // namespace lowbit
