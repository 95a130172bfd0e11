// shape.h: Shape (a list of dimension sizes) and the helpers every op uses on it:
// element counts, printing "[128, 1, 28, 28]", and NumPy-style broadcasting.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

using Shape = std::vector<int64_t>;

int64_t numel(const Shape& shape);
std::string to_string(const Shape& shape);
// Broadcast two shapes NumPy-style (align right, size-1 dims stretch). Throws naming both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b);
// Row-major strides of a contiguous tensor of this shape.
std::vector<int64_t> contiguous_strides(const Shape& shape);

}  // namespace lowbit
