// tensor.cpp: storage allocation, factories, data access and the autograd fields of Tensor.
#include "core/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <malloc.h>
#include <cstring>
#include <new>

#include "core/autograd.h"
#include "core/error.h"
#include "core/random.h"

namespace lowbit {

namespace {
// Training allocates and frees the same large activation buffers every step. glibc serves
// blocks above 128 KiB with fresh mmap()s, so each step paid page faults on first touch (~17 %
// of a convnet step). Keep freed memory in the heap for reuse instead.
const bool g_malloc_tuned = [] {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc caps it at 32 MiB on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}();
}  // namespace

Storage::Storage(int64_t count, Layout layout, int64_t channels, int64_t plane)
    : count_(count), layout_(layout), channels_(channels), plane_(plane) {
  (void)g_malloc_tuned;
  LOWBIT_CHECK(count >= 0, "tensor size must be non-negative, got ", count);
  // Round the byte size up to 64 so aligned_alloc's contract holds; at least one line.
  const size_t bytes = ((static_cast<size_t>(count) * sizeof(float) + 63) / 64) * 64;
  data_ = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (!data_) throw std::bad_alloc();
}

Storage::~Storage() { std::free(data_); }

void Storage::to_nchw() {
  if (layout() == Layout::nchw) return;
  std::lock_guard<std::mutex> lock(convert_);
  if (layout() == Layout::nchw) return;  // another thread converted it meanwhile
  Storage plain(count_);
  nchw16c_to_nchw(data_, plain.data_, count_ / (channels_ * plane_), channels_, plane_);
  std::swap(data_, plain.data_);
  layout_.store(Layout::nchw, std::memory_order_release);
}

namespace {
std::shared_ptr<TensorImpl> make_impl(const Shape& shape, Layout layout) {
  for (int64_t d : shape) LOWBIT_CHECK(d >= 0, "tensor shape ", to_string(shape), " has a negative dimension");
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  if (layout == Layout::nchw) {
    impl->storage = std::make_shared<Storage>(numel(shape));
  } else {
    LOWBIT_CHECK(can_block(shape), "tensor of shape ", to_string(shape), " cannot be stored ", layout_name(layout),
                 ": it needs [N, C, H, W] with C a positive multiple of ", kLayoutBlock);
    impl->storage = std::make_shared<Storage>(numel(shape), layout, shape[1], shape[2] * shape[3]);
  }
  return impl;
}
const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  LOWBIT_CHECK(impl != nullptr, "operation on an undefined tensor");
  return *impl;
}
}  // namespace

Tensor Tensor::empty(const Shape& shape) { return Tensor(make_impl(shape, Layout::nchw)); }
Tensor Tensor::empty(const Shape& shape, Layout layout) { return Tensor(make_impl(shape, layout)); }

Tensor Tensor::zeros(const Shape& shape) { return full(shape, 0.f); }
Tensor Tensor::ones(const Shape& shape) { return full(shape, 1.f); }

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  LOWBIT_CHECK(static_cast<int64_t>(values.size()) == lowbit::numel(shape), "from_vector: shape ",
               to_string(shape), " needs ", lowbit::numel(shape), " values, got ", values.size());
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

Tensor Tensor::scalar(float value) { return full({}, value); }

Tensor Tensor::randn(const Shape& shape, Generator& gen, float mean, float stddev) {
  Tensor t = empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = mean + stddev * gen.normal();
  return t;
}

Tensor Tensor::uniform(const Shape& shape, Generator& gen, float low, float high) {
  Tensor t = empty(shape);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = low + (high - low) * gen.uniform();
  return t;
}

const Shape& Tensor::shape() const { return checked(impl_).shape; }

int64_t Tensor::size(int64_t d) const {
  const int64_t r = dim();
  const int64_t i = d < 0 ? d + r : d;
  LOWBIT_CHECK(i >= 0 && i < r, "dimension ", d, " out of range for shape ", to_string(shape()));
  return shape()[i];
}

int64_t Tensor::numel() const { return lowbit::numel(shape()); }

float* Tensor::data() {
  checked(impl_).storage->to_nchw();
  return impl_->storage->data() + impl_->offset;
}
const float* Tensor::data() const {
  checked(impl_).storage->to_nchw();
  return impl_->storage->data() + impl_->offset;
}
Layout Tensor::layout() const { return checked(impl_).storage->layout(); }
float* Tensor::raw_data() { return checked(impl_).storage->data() + impl_->offset; }
const float* Tensor::raw_data() const { return checked(impl_).storage->data() + impl_->offset; }

float Tensor::item() const {
  LOWBIT_CHECK(numel() == 1, "item() needs a one-element tensor, got shape ", to_string(shape()));
  return data()[0];
}

std::vector<float> Tensor::to_vector() const { return std::vector<float>(data(), data() + numel()); }

Tensor Tensor::clone() const {
  Tensor t = empty(shape(), layout());
  std::memcpy(t.raw_data(), raw_data(), sizeof(float) * numel());
  return t;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = checked(impl_).storage;
  impl->offset = impl_->offset;
  impl->shape = impl_->shape;
  return Tensor(impl);
}

void Tensor::copy_(const Tensor& src) {
  LOWBIT_CHECK(src.numel() == numel(), "copy_: source has shape ", to_string(src.shape()),
               ", destination has shape ", to_string(shape()));
  if (src.layout() == layout() && src.shape() == shape()) {
    if (src.raw_data() != raw_data()) std::memmove(raw_data(), src.raw_data(), sizeof(float) * numel());
  } else if (src.data() != data()) {
    std::memmove(data(), src.data(), sizeof(float) * numel());
  }
}

void Tensor::fill_(float value) { std::fill(raw_data(), raw_data() + numel(), value); }  // any layout

Tensor Tensor::reshape(const Shape& new_shape) const {
  Shape s = new_shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      LOWBIT_CHECK(infer < 0, "reshape to ", to_string(new_shape), ": only one dimension may be -1");
      infer = static_cast<int64_t>(i);
    } else {
      LOWBIT_CHECK(s[i] >= 0, "reshape to ", to_string(new_shape), ": negative dimension");
      known *= s[i];
    }
  }
  if (infer >= 0) {
    LOWBIT_CHECK(known > 0 && numel() % known == 0, "cannot reshape ", to_string(shape()), " to ",
                 to_string(new_shape));
    s[infer] = numel() / known;
  }
  LOWBIT_CHECK(lowbit::numel(s) == numel(), "cannot reshape ", to_string(shape()), " (", numel(),
               " elements) to ", to_string(new_shape));
  (void)data();  // a view of another shape reads row-major
  Tensor view = detach();
  view.impl_->shape = s;
  const Shape in_shape = shape();
  return record(view, "reshape", {*this},
                [in_shape](const Tensor& g) { return std::vector<Tensor>{g.reshape(in_shape)}; });
}

Tensor Tensor::flatten(int64_t start_dim) const {
  LOWBIT_CHECK(start_dim >= 0 && start_dim <= dim(), "flatten: start_dim ", start_dim,
               " out of range for shape ", to_string(shape()));
  Shape s(shape().begin(), shape().begin() + start_dim);
  s.push_back(-1);
  if (numel() == 0) s.back() = 0;
  return reshape(s);
}

bool Tensor::requires_grad() const { return checked(impl_).requires_grad || impl_->grad_fn != nullptr; }

Tensor& Tensor::set_requires_grad(bool value) {
  LOWBIT_CHECK(checked(impl_).grad_fn == nullptr || value,
               "set_requires_grad(false) on a non-leaf tensor; use detach()");
  impl_->requires_grad = value;
  return *this;
}

bool Tensor::is_leaf() const { return checked(impl_).grad_fn == nullptr; }

Tensor Tensor::grad() const { return Tensor(checked(impl_).grad); }

void Tensor::set_grad(const Tensor& g) {
  if (g.defined())
    LOWBIT_CHECK(g.shape() == shape(), "set_grad: gradient shape ", to_string(g.shape()),
                 " does not match tensor shape ", to_string(shape()));
  checked(impl_);
  impl_->grad = g.impl_ptr();
}

void Tensor::zero_grad() {
  if (checked(impl_).grad) Tensor(impl_->grad).fill_(0.f);
}

void Tensor::backward() const {
  LOWBIT_CHECK(numel() == 1, "backward() needs a scalar loss, got shape ", to_string(shape()),
               "; pass an explicit gradient instead");
  run_backward(*this, Tensor::ones(shape()));
}

void Tensor::backward(const Tensor& grad_output) const { run_backward(*this, grad_output); }

const std::shared_ptr<Node>& Tensor::grad_fn() const { return checked(impl_).grad_fn; }

bool Tensor::same_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

bool Tensor::storage_unique() const { return checked(impl_).storage.use_count() == 1; }

}  // namespace lowbit
