// activation.cpp: parameter-free layers.
#include "layers/activation.h"

#include "core/error.h"
#include "core/ops_dropout.h"
#include "core/ops_elementwise.h"
#include "core/ops_pool.h"

namespace lowbit {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p, is_training(), global_generator()); }
std::string Dropout::describe() const { return detail::concat("Dropout(", p, ")"); }

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, kernel, stride, padding); }
std::string MaxPool2d::describe() const { return detail::concat("MaxPool2d(", kernel, ", stride ", stride, ")"); }

Tensor AvgPool2d::forward(const Tensor& x) { return avg_pool2d(x, kernel, stride, padding); }
std::string AvgPool2d::describe() const { return detail::concat("AvgPool2d(", kernel, ", stride ", stride, ")"); }

Tensor GlobalAvgPool2d::forward(const Tensor& x) { return global_avg_pool2d(x); }

}  // namespace lowbit
