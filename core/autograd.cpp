// autograd.cpp: recording nodes and the iterative backward engine.
#include "core/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "core/error.h"

namespace lowbit {

namespace {
thread_local bool t_grad_enabled = true;

// dst += src, elementwise, same shape (as stored when both share a layout).
void add_into(Tensor& dst, const Tensor& src) {
  const bool same = dst.layout() == src.layout();
  float* d = same ? dst.raw_data() : dst.data();
  const float* s = same ? src.raw_data() : src.data();
  const int64_t n = dst.numel();
  for (int64_t i = 0; i < n; ++i) d[i] += s[i];
}

// Take ownership of a fresh gradient, or copy it when someone else still shares its storage
// (a view's backward may hand back its own input).
Tensor own(const Tensor& g) { return g.storage_unique() ? g.detach() : g.clone(); }
}  // namespace

void accumulate_grad(const Tensor& leaf, const Tensor& g) {
  LOWBIT_CHECK(g.shape() == leaf.shape(), "accumulate_grad: gradient shape ", to_string(g.shape()),
               " does not match the tensor's ", to_string(leaf.shape()));
  Tensor t = leaf;
  if (t.grad().defined()) {
    Tensor dst = t.grad();
    add_into(dst, g);
  } else {
    t.set_grad(own(g));
  }
}

bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = previous_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor result, const char* op, std::vector<Tensor> inputs, Node::BackwardFn backward) {
  if (!needs_grad(inputs)) return result;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  result.impl()->grad_fn = std::move(node);
  return result;
}

void run_backward(const Tensor& root, const Tensor& grad_output) {
  LOWBIT_CHECK(root.requires_grad(), "backward() on a tensor that does not require grad");
  LOWBIT_CHECK(grad_output.shape() == root.shape(), "backward: gradient shape ",
               to_string(grad_output.shape()), " does not match output shape ", to_string(root.shape()));
  if (!root.grad_fn()) {  // a leaf: its gradient is the seed
    Tensor r = root;
    if (r.grad().defined()) {
      Tensor g = r.grad();
      add_into(g, grad_output);
    } else {
      r.set_grad(grad_output.clone());
    }
    return;
  }

  // Iterative post-order DFS gives a topological order without recursion.
  // `order` owns the nodes: freeing a node's inputs below must not destroy nodes not yet run.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root.grad_fn(), 0}};
  visited.insert(root.grad_fn().get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    LOWBIT_CHECK(!node->freed, "backward through a graph that was already freed (op '", node->op,
                 "'); run the forward pass again");
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      if (in.defined() && in.grad_fn() && visited.insert(in.grad_fn().get()).second)
        stack.push_back({in.grad_fn(), 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }

  std::unordered_map<Node*, Tensor> pending;  // gradient w.r.t. each node's output
  pending[root.grad_fn().get()] = grad_output.clone();
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* node = it->get();
    auto found = pending.find(node);
    if (found != pending.end()) {
      Tensor gout = std::move(found->second);
      pending.erase(found);
      std::vector<Tensor> gin;
      {
        NoGradGuard no_grad;  // backward closures never record (no double backward)
        gin = node->backward(gout);
      }
      LOWBIT_CHECK(gin.size() == node->inputs.size(), "internal: op '", node->op, "' returned ",
                   gin.size(), " gradients for ", node->inputs.size(), " inputs");
      for (size_t i = 0; i < gin.size(); ++i) {
        Tensor& in = node->inputs[i];
        if (!gin[i].defined() || !in.defined() || !in.requires_grad()) continue;
        LOWBIT_CHECK(gin[i].shape() == in.shape(), "internal: op '", node->op, "' gradient ", i,
                     " has shape ", to_string(gin[i].shape()), ", input has ", to_string(in.shape()));
        if (Node* child = in.grad_fn().get()) {
          auto slot = pending.find(child);
          if (slot == pending.end()) pending.emplace(child, own(gin[i]));
          else add_into(slot->second, gin[i]);
        } else {
          accumulate_grad(in, gin[i]);
        }
      }
    }
    // Free the graph as we go: saved tensors and inputs are released.
    node->backward = nullptr;
    node->inputs.clear();
    node->freed = true;
  }
}

Tensor sum_to_shape(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const Shape& gs = grad.shape();
  const size_t rank = gs.size();
  LOWBIT_CHECK(shape.size() <= rank, "sum_to_shape: cannot reduce ", to_string(gs), " to ", to_string(shape));
  // Pad the target shape with leading ones to the gradient's rank.
  Shape target(rank - shape.size(), 1);
  target.insert(target.end(), shape.begin(), shape.end());
  Tensor out = Tensor::zeros(shape);
  const auto tstrides = contiguous_strides(target);
  const float* g = grad.data();
  float* o = out.data();
  const int64_t n = grad.numel();
  std::vector<int64_t> idx(rank, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = 0;
    for (size_t d = 0; d < rank; ++d)
      if (target[d] != 1) t += idx[d] * tstrides[d];
    o[t] += g[i];
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < gs[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

}  // namespace lowbit
