// module.cpp: registration, recursive traversal, train/eval and state dicts of Module.
#include "layers/module.h"

#include <cstring>
#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops_elementwise.h"

namespace lowbit {

Tensor Module::forward_relu(const Tensor& x) { return relu(forward(x)); }

Parameter& Parameter::operator=(const Tensor& value) {
  LOWBIT_CHECK(value.defined(), "assigning an undefined tensor to a parameter");
  if (!tensor_.defined()) {
    tensor_ = value;
    return *this;
  }
  if (value.same_storage(tensor_) && value.shape() == tensor_.shape()) return *this;
  if (value.shape() == tensor_.shape()) {
    std::memcpy(tensor_.data(), value.data(), sizeof(float) * value.numel());
  } else {
    // Re-point the same TensorImpl (identity kept for every holder) at a copy of the data.
    Tensor copy = value.clone();
    tensor_.impl()->storage = copy.impl()->storage;
    tensor_.impl()->offset = 0;
    tensor_.impl()->shape = copy.shape();
    tensor_.impl()->grad.reset();
  }
  return *this;
}

void Module::register_parameter(const std::string& name, Parameter& slot, const Tensor& value) {
  LOWBIT_CHECK(value.defined(), "register_parameter('", name, "'): undefined tensor");
  slot.tensor_ = value.detach();
  slot.tensor_.set_requires_grad(true);
  params_.emplace_back(name, &slot);
}

void Module::register_buffer(const std::string& name, Parameter& slot, const Tensor& value) {
  LOWBIT_CHECK(value.defined(), "register_buffer('", name, "'): undefined tensor");
  slot.tensor_ = value.detach();
  buffers_.emplace_back(name, &slot);
}

void Module::register_generator(const std::string& name, Generator& slot) { generators_.emplace_back(name, &slot); }

std::vector<std::pair<std::string, Generator*>> Module::named_generators() {
  std::vector<std::pair<std::string, Generator*>> out;
  for (auto& [name, m] : named_modules())
    for (auto& [g, slot] : m->generators_) out.emplace_back(name.empty() ? g : name + "." + g, slot);
  return out;
}

void Module::add_child(ChildSlot slot) { children_.push_back(std::move(slot)); }

void Module::throw_bad_child(const std::string& name, const std::string& type) {
  throw Error(detail::concat("replace_child: module of type ", type, " does not fit slot '", name, "'"));
}

void Module::collect(const std::string& prefix, bool params,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, slot] : params ? params_ : buffers_)
    if (slot->defined()) out.emplace_back(prefix + name, slot->tensor());
  for (const auto& c : children_)
    if (auto m = c.get()) m->collect(prefix + c.name + ".", params, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, out);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::children() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (const auto& c : children_)
    if (auto m = c.get()) out.emplace_back(c.name, m);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  // Depth-first with an explicit stack; the root is held without ownership.
  std::shared_ptr<Module> root(std::shared_ptr<Module>{}, this);
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> stack{{"", root}};
  while (!stack.empty()) {
    auto [name, m] = stack.back();
    stack.pop_back();
    out.emplace_back(name, m);
    auto kids = m->children();
    for (auto it = kids.rbegin(); it != kids.rend(); ++it)
      stack.emplace_back(name.empty() ? it->first : name + "." + it->first, it->second);
  }
  return out;
}

void Module::replace_child(const std::string& name, std::shared_ptr<Module> module) {
  for (auto& c : children_)
    if (c.name == name) {
      c.set(std::move(module));
      return;
    }
  throw Error(detail::concat("replace_child: ", type_name(), " has no child named '", name, "'"));
}

void Module::train(bool on) {
  const bool changed = training_ != on;
  training_ = on;
  if (changed) on_mode_change();
  for (auto& c : children_)
    if (auto m = c.get()) m->train(on);
}

void Module::zero_grad() {
  for (auto& [n, t] : named_parameters()) {
    Tensor p = t;
    p.zero_grad();
  }
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

StateDict Module::state_dict() const {
  StateDict sd;
  for (auto& [n, t] : named_parameters()) sd.tensors[n] = t;
  for (auto& [n, t] : named_buffers()) sd.tensors[n] = t;
  return sd;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  auto entries = named_parameters();
  for (auto& e : named_buffers()) entries.push_back(e);
  std::set<std::string> seen;
  for (auto& [name, t] : entries) {
    auto it = state.tensors.find(name);
    if (it == state.tensors.end()) {
      LOWBIT_CHECK(!strict, "state dict has no entry '", name, "' (expected shape ", to_string(t.shape()), ")");
      continue;
    }
    LOWBIT_CHECK(it->second.shape() == t.shape(), "state dict entry '", name, "' has shape ",
                 to_string(it->second.shape()), ", the model expects ", to_string(t.shape()));
    seen.insert(name);
  }
  if (strict)
    for (auto& [name, t] : state.tensors)
      LOWBIT_CHECK(seen.count(name), "state dict entry '", name, "' does not belong to this model");
  // Validate everything before changing anything: a failed load leaves the model untouched.
  for (auto& [name, t] : entries) {
    auto it = state.tensors.find(name);
    if (it == state.tensors.end()) continue;
    Tensor dst = t;
    dst.copy_(it->second);
  }
}

}  // namespace lowbit
