// autograd.h: the reverse-mode autodiff graph.
// Every differentiable op is a free function that computes its result and, when gradients are
// wanted, attaches a Node: the op's name, its inputs and a closure that maps the gradient of
// the output to the gradients of the inputs (Flashlight style). backward() sorts the graph
// iteratively (no recursion depth limit), runs the closures in reverse topological order,
// ACCUMULATES (+=) into the .grad of leaves, then frees the graph (closures and saved tensors).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lowbit {

struct Node {
  // Given dL/d(output), return dL/d(input_i) for each input, in order; an undefined Tensor
  // means "no gradient for that input". Returned gradients must have the input's shape.
  using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;
  const char* op = "";
  std::vector<Tensor> inputs;
  BackwardFn backward;
  bool freed = false;
};

// Gradient recording is on by default; NoGradGuard turns it off for its scope (this thread).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op over these inputs must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Attach a node to `result` (when any input requires grad and recording is on). Returns result.
Tensor record(Tensor result, const char* op, std::vector<Tensor> inputs, Node::BackwardFn backward);

// leaf.grad += g, the rule backward uses for every leaf (g itself becomes .grad when the leaf has
// none yet, copied when someone else shares its storage). For gradients added after backward (a
// data-parallel module's deferred parameter gradient, Module::finish_gradients), so that they
// land in .grad with exactly backward's arithmetic.
void accumulate_grad(const Tensor& leaf, const Tensor& g);

// Run the backward pass from `root` seeded with `grad_output`.
void run_backward(const Tensor& root, const Tensor& grad_output);

// Sum `grad` down to `shape` (undoing broadcasting): used by broadcasting ops' backward.
Tensor sum_to_shape(const Tensor& grad, const Shape& shape);

}  // namespace lowbit
