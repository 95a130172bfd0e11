// ops_dropout.cpp: inverted dropout with a saved mask.
#include "core/ops_dropout.h"

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops_elementwise.h"

namespace lowbit {

Tensor dropout(const Tensor& x, float p, bool training, Generator& gen) {
  LOWBIT_CHECK(p >= 0.f && p < 1.f, "dropout: probability must be in [0, 1), got ", p);
  if (!training || p == 0.f) return x;
  Tensor mask = Tensor::empty(x.shape());
  const float keep_scale = 1.f / (1.f - p);
  float* pm = mask.data();
  for (int64_t i = 0; i < mask.numel(); ++i) pm[i] = gen.uniform() >= p ? keep_scale : 0.f;
  return mul(x, mask);
}

}  // namespace lowbit
