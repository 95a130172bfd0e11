// ops_elementwise.h: differentiable elementwise ops on float32 tensors.
// Binary ops broadcast NumPy-style; their backward sums the gradient back to each input's
// shape. Unary ops document their derivative next to the formula, including the value chosen
// at a kink (relu'(0) = 0, clamp passes the gradient on the closed interval [lo, hi]).
#pragma once
#include "core/tensor.h"

namespace lowbit {

Tensor add(const Tensor& a, const Tensor& b);  // a + b
Tensor sub(const Tensor& a, const Tensor& b);  // a - b
Tensor mul(const Tensor& a, const Tensor& b);  // a * b
Tensor div(const Tensor& a, const Tensor& b);  // a / b
Tensor add_scalar(const Tensor& a, float s);   // a + s
Tensor mul_scalar(const Tensor& a, float s);   // a * s
Tensor neg(const Tensor& a);                   // -a

Tensor relu(const Tensor& x);                        // max(x, 0); d/dx = [x > 0]
// max(a + b, 0) for same-shape a, b in one pass (a residual join); d/da = d/db = [a + b > 0].
Tensor add_relu(const Tensor& a, const Tensor& b);
Tensor clamp(const Tensor& x, float lo, float hi);   // min(max(x, lo), hi); d/dx = [lo <= x <= hi]
Tensor tanh(const Tensor& x);                        // d/dx = 1 - tanh(x)^2
Tensor abs(const Tensor& x);                         // d/dx = sign(x), 0 at 0
Tensor exp(const Tensor& x);                         // d/dx = exp(x)
Tensor log(const Tensor& x);                         // d/dx = 1/x
Tensor sqrt(const Tensor& x);                        // d/dx = 1/(2 sqrt(x))
Tensor square(const Tensor& x);                      // d/dx = 2x
Tensor sigmoid(const Tensor& x);                     // d/dx = s(1 - s)

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, float s) { return add_scalar(a, s); }
inline Tensor operator-(const Tensor& a, float s) { return add_scalar(a, -s); }
inline Tensor operator*(const Tensor& a, float s) { return mul_scalar(a, s); }
inline Tensor operator*(float s, const Tensor& a) { return mul_scalar(a, s); }
inline Tensor operator-(const Tensor& a) { return neg(a); }

}  // namespace lowbit
