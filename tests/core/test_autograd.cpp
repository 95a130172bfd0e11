// test_autograd.cpp: the graph engine: accumulation, freeing, NoGradGuard, errors.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops_elementwise.h"
#include "core/ops_reduce.h"

using namespace lowbit;

TEST_CASE("backward accumulates into leaves across calls") {
  Tensor x = Tensor::from_vector({3}, {1.f, 2.f, 3.f}).set_requires_grad(true);
  Tensor y = sum(mul(x, x));  // dy/dx = 2x
  y.backward();
  CHECK(x.grad().to_vector() == std::vector<float>{2.f, 4.f, 6.f});
  Tensor y2 = sum(mul(x, x));
  y2.backward();
  CHECK(x.grad().to_vector() == std::vector<float>{4.f, 8.f, 12.f});
  x.zero_grad();
  CHECK(x.grad().to_vector() == std::vector<float>{0.f, 0.f, 0.f});
}

TEST_CASE("a tensor used twice gets both contributions (diamond graph)") {
  Tensor x = Tensor::from_vector({2}, {3.f, -1.f}).set_requires_grad(true);
  Tensor a = mul_scalar(x, 2.f);
  Tensor b = mul(a, a);                // 4x^2
  Tensor c = add(b, a);                // 4x^2 + 2x
  sum(c).backward();                   // 8x + 2
  CHECK(x.grad().to_vector() == std::vector<float>{26.f, -6.f});
}

TEST_CASE("graph is freed after backward and a second backward is an error") {
  Tensor x = Tensor::from_vector({1}, {2.f}).set_requires_grad(true);
  Tensor y = sum(mul(x, x));
  y.backward();
  CHECK(y.grad_fn()->freed);
  CHECK(y.grad_fn()->inputs.empty());
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("already freed"), Error);
}

TEST_CASE("NoGradGuard records nothing") {
  Tensor x = Tensor::from_vector({2}, {1.f, 2.f}).set_requires_grad(true);
  {
    NoGradGuard guard;
    Tensor y = mul(x, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK(mul(x, x).requires_grad());
}

TEST_CASE("inputs without requires_grad get no gradient") {
  Tensor x = Tensor::from_vector({2}, {1.f, 2.f}).set_requires_grad(true);
  Tensor c = Tensor::from_vector({2}, {5.f, 6.f});
  sum(mul(x, c)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{5.f, 6.f});
  CHECK_FALSE(c.grad().defined());
}

TEST_CASE("deep chains do not overflow the stack (iterative sort)") {
  Tensor x = Tensor::from_vector({1}, {1.f}).set_requires_grad(true);
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = add_scalar(y, 0.f);
  sum(y).backward();
  CHECK(x.grad().item() == 1.f);
}

TEST_CASE("shape errors name both shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4});
  CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("[2, 3] and [4]"), Error);
  CHECK_THROWS_WITH_AS(a.reshape({5}), doctest::Contains("[2, 3]"), Error);
  a.set_requires_grad(true);
  CHECK_THROWS_WITH_AS(sum(a).backward(Tensor::zeros({2})), doctest::Contains("shape"), Error);
  Tensor plain = Tensor::zeros({1});
  CHECK_THROWS_WITH_AS(plain.backward(), doctest::Contains("does not require grad"), Error);
}

TEST_CASE("reshape is a view and its gradient flows back") {
  Tensor x = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6}).set_requires_grad(true);
  Tensor v = x.reshape({3, -1});
  CHECK(v.shape() == Shape{3, 2});
  CHECK(v.same_storage(x));
  sum(mul(v, v)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{2, 4, 6, 8, 10, 12});
}
