// tensor.h: Tensor, lowbit's float32 n-dimensional array with reverse-mode autodiff.
// A Tensor is a cheap handle (shared_ptr) to a TensorImpl: contiguous row-major data in shared
// 64-byte-aligned storage (views such as reshape share it), a shape, and the autograd fields
// (requires_grad, accumulated .grad for leaves, grad_fn for results of recorded ops).
// Copying a Tensor copies the handle, never the data; clone() copies the data.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/shape.h"

namespace lowbit {

class Generator;
struct Node;

// Owns one 64-byte-aligned float buffer; shared by a tensor and its views.
class Storage {
 public:
  explicit Storage(int64_t count);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data() { return data_; }
  int64_t count() const { return count_; }

 private:
  float* data_ = nullptr;
  int64_t count_ = 0;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in floats, into storage
  Shape shape;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient (leaves)
  std::shared_ptr<Node> grad_fn;     // op that produced this tensor (non-leaves)
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // --- factories (all contiguous, no graph) ---
  static Tensor empty(const Shape& shape);  // uninitialised
  static Tensor zeros(const Shape& shape);
  static Tensor ones(const Shape& shape);
  static Tensor full(const Shape& shape, float value);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);
  static Tensor scalar(float value);
  static Tensor randn(const Shape& shape, Generator& gen, float mean = 0.f, float stddev = 1.f);
  static Tensor uniform(const Shape& shape, Generator& gen, float low, float high);

  // --- shape and data ---
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  float* data();
  const float* data() const;
  float item() const;  // the value of a one-element tensor
  std::vector<float> to_vector() const;
  Tensor clone() const;   // deep copy of the data, no graph
  Tensor detach() const;  // same data, cut from the graph
  void copy_(const Tensor& src);  // data copy, same numel; no graph
  void fill_(float value);
  // Reshape as a view sharing storage; one dim may be -1. Recorded in the graph.
  Tensor reshape(const Shape& shape) const;
  Tensor flatten(int64_t start_dim = 1) const;

  // --- autograd ---
  bool requires_grad() const;
  Tensor& set_requires_grad(bool value);
  bool is_leaf() const;
  Tensor grad() const;       // undefined until a backward reached this leaf
  void set_grad(const Tensor& g);
  void zero_grad();          // grad := 0 (kept allocated)
  // Reverse-mode autodiff from this scalar: gradients ACCUMULATE into the .grad of every leaf
  // that requires grad; the graph is freed afterwards.
  void backward() const;
  // Same, seeding with an explicit output gradient of this tensor's shape.
  void backward(const Tensor& grad_output) const;
  const std::shared_ptr<Node>& grad_fn() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same_storage(const Tensor& other) const;
  bool storage_unique() const;  // no other tensor or view shares the storage

 private:
  std::shared_ptr<TensorImpl> impl_;
};

}  // namespace lowbit
