// tensor.h: Tensor, lowbit's float32 n-dimensional array with reverse-mode autodiff.
// A Tensor is a cheap handle (shared_ptr) to a TensorImpl: contiguous data in shared 64-byte-aligned
// storage (views such as reshape share it), a shape, and the autograd fields (requires_grad,
// accumulated .grad for leaves, grad_fn for results of recorded ops). The storage is row-major
// (Layout::nchw) unless an op made it channel-blocked (Layout::nchw16c, core/layout.h); data()
// always reads row-major. Copying a Tensor copies the handle, never the data; clone() copies the data.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/layout.h"
#include "core/shape.h"

namespace lowbit {

class Generator;
struct Node;

// Owns one 64-byte-aligned float buffer; shared by a tensor and its views. A blocked storage
// (Layout::nchw16c) holds whole images of `channels` x `plane` floats and can turn itself row-major
// once (to_nchw), safely from several threads.
class Storage {
 public:
  explicit Storage(int64_t count, Layout layout = Layout::nchw, int64_t channels = 0, int64_t plane = 0);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data() { return data_; }
  int64_t count() const { return count_; }
  Layout layout() const { return layout_.load(std::memory_order_acquire); }
  void to_nchw();  // rearranges the floats row-major (a no-op when they are)

 private:
  float* data_ = nullptr;
  int64_t count_ = 0;
  std::atomic<Layout> layout_;
  int64_t channels_, plane_;  // the blocking geometry of nchw16c
  std::mutex convert_;
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
  // Uninitialised, stored in `layout` (nchw16c needs can_block(shape)).
  static Tensor empty(const Shape& shape, Layout layout);
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
  // The floats in row-major order (a blocked storage is converted once, for every view of it).
  float* data();
  const float* data() const;
  // The floats as stored, in layout(): for ops that know the layout (core/layout.h).
  Layout layout() const;
  float* raw_data();
  const float* raw_data() const;
  float item() const;  // the value of a one-element tensor
  std::vector<float> to_vector() const;
  Tensor clone() const;   // deep copy of the data (same layout), no graph
  Tensor detach() const;  // same data, cut from the graph
  void copy_(const Tensor& src);  // data copy, same numel; no graph
  void fill_(float value);
  // Reshape as a view sharing storage (made row-major first); one dim may be -1. Recorded in the graph.
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
