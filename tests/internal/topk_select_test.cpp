// TOPK_CE's selection math (kernels/common/topk.cuh), host side: the sort key orders losses
// descending (a NaN first, −0 and +0 tied, never the left-out key), and K = ⌈f · M⌉ with
// products a rounding above an integer taken as that integer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/common/topk.cuh"

namespace {

using culoss::kTopKLeftOut;
using culoss::topk_count;
using culoss::topk_key;

TEST(TopKSelect, KeysOrderLossesDescending) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> v = {inf,  1e300, 3.5,    1.0, std::nextafter(1.0, 0.0), 1e-300, 5e-324, 0.0,
                           -0.0, -1.0,  -1e300, -inf};
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    if (v[i] == v[i + 1]) {
      EXPECT_EQ(topk_key(v[i]), topk_key(v[i + 1])) << v[i];  // −0 and +0 tie
      continue;
    }
    EXPECT_LT(topk_key(v[i]), topk_key(v[i + 1])) << v[i] << " before " << v[i + 1];
  }
  EXPECT_LT(topk_key(std::nan("")), topk_key(inf));  // a NaN ranks first
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(-50, 50);
  for (int i = 0; i < 100000; ++i) {
    const double a = u(rng), b = u(rng);
    EXPECT_EQ(a > b, topk_key(a) < topk_key(b));
    EXPECT_NE(kTopKLeftOut, topk_key(a));
  }
  EXPECT_NE(kTopKLeftOut, topk_key(-inf));
  EXPECT_NE(kTopKLeftOut, topk_key(std::nan("")));
  EXPECT_NE(kTopKLeftOut, topk_key(-std::nan("")));
}

// The fast path's 32-bit keys order floats exactly as topk_key orders their doubles.
TEST(TopKSelect, FloatKeysOrderAsTheDoubleKeys) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> v = {std::nanf(""), -std::nanf(""), inf, 3e38f, 3.5f, 1.0f,
                          std::nextafter(1.0f, 0.0f), 1e-38f, 1e-45f, 0.0f, -0.0f, -1e-45f,
                          -1.0f, -3e38f, -inf};
  const size_t special = v.size();
  for (size_t i = 0; i < special; ++i)  // every pair of the special values
    for (size_t k = 0; k < special; ++k) {
      ASSERT_EQ(topk_key(v[i]) < topk_key(v[k]), culoss::topk_key32(v[i]) < culoss::topk_key32(v[k]));
      ASSERT_EQ(topk_key(v[i]) == topk_key(v[k]),
                culoss::topk_key32(v[i]) == culoss::topk_key32(v[k]));
    }
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> u(-50, 50);
  for (int i = 0; i < 20000; ++i) v.push_back(u(rng));
  for (size_t i = 0; i < v.size(); ++i) {
    const float a = v[i];
    EXPECT_NE(culoss::kTopKLeftOut32, culoss::topk_key32(a)) << a;
    for (size_t j = 0; j < 40; ++j) {
      const float b = v[(i * 7919 + j * 104729) % v.size()];
      const uint64_t da = topk_key(a), db = topk_key(b);
      const uint32_t fa = culoss::topk_key32(a), fb = culoss::topk_key32(b);
      ASSERT_EQ(da < db, fa < fb) << a << " " << b;
      ASSERT_EQ(da == db, fa == fb) << a << " " << b;
    }
  }
}

TEST(TopKSelect, KIsTheCeilingWithProductsSnappedToIntegers) {
  EXPECT_EQ(0, topk_count(0.5, 0));
  EXPECT_EQ(1, topk_count(1e-300, 1));
  EXPECT_EQ(1, topk_count(1e-12, 1000000));
  EXPECT_EQ(7, topk_count(0.7, 10));  // 7.000000000000001 in double
  EXPECT_EQ(3, topk_count(0.1, 30));
  EXPECT_EQ(4, topk_count(0.1, 31));
  EXPECT_EQ(10, topk_count(1.0, 10));
  EXPECT_EQ(10, topk_count(0.95, 10));
  EXPECT_EQ(int64_t(1) << 40, topk_count(1.0, int64_t(1) << 40));
  EXPECT_EQ(419431, topk_count(0.1, 4194304));  // 419430.4
  // every k / 100 of every M below 1000 is the exact ceiling of k · M / 100
  for (int64_t M = 1; M < 1000; ++M)
    for (int k = 1; k <= 100; ++k) {
      const int64_t want = std::max<int64_t>(1, (k * M + 99) / 100);
      ASSERT_EQ(want, topk_count(k / 100.0, M)) << k << "% of " << M;
    }
}

}  // namespace
