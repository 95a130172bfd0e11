// pixel_norm.h: the one input normalization of lowbit, shared by the training data loader
// (core/data/loader.cpp) and the serving runtime (quant/runtime/int_model.cpp): a 0..255 pixel
// becomes (v / 255 - mean) / std in float, these two roundings in this order. Keeping it in one
// place is what makes a served model's uint8 entry bit-identical to the training-time input.
#pragma once
#include <cstdint>

namespace lowbit {

inline float normalize_pixel(uint8_t v, float mean, float std_dev) {
  return (static_cast<float>(v) / 255.0f - mean) / std_dev;
}

}  // namespace lowbit
