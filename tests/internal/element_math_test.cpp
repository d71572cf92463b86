// Internal helpers of the element math (kernels/common), tested on the host. The CPU backend
// instantiates this code with double; the CUDA backend also with float, so the float-only
// branches are checked here directly.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/common/math.cuh"

namespace {

TEST(ElementMath, NarrowCoefClampsFloatBeyond1e30) {
  using culoss::narrow_coef;
  EXPECT_EQ(1e30f, narrow_coef<float>(1e39));  // would be inf as a float
  EXPECT_EQ(-1e30f, narrow_coef<float>(-1e300));
  EXPECT_EQ(1e30f, narrow_coef<float>(std::numeric_limits<double>::infinity()));
  EXPECT_EQ(0.25f, narrow_coef<float>(0.25));
  EXPECT_EQ(static_cast<float>(3e29), narrow_coef<float>(3e29));
  EXPECT_TRUE(std::isnan(narrow_coef<float>(std::nan(""))));
  // double keeps every value: the CPU backend's results are exact.
  EXPECT_EQ(1e39, narrow_coef<double>(1e39));
  EXPECT_EQ(-1e300, narrow_coef<double>(-1e300));
}

}  // namespace
