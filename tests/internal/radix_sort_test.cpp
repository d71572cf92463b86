// The CPU backend's Lovász sort (src/cpu/radix_sort.hpp) against the order it replaces: a
// comparison sort by error descending, a NaN error first, ties (−0 and +0 included) by element.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "src/cpu/radix_sort.hpp"

namespace {

using culoss::cpu::KeyedElement;

struct Item {
  double e;
  int64_t element;
};

// The comparator of the CPU backend before the radix sort.
bool before(const Item& a, const Item& b) {
  const bool a_nan = std::isnan(a.e), b_nan = std::isnan(b.e);
  if (a_nan != b_nan) return a_nan;
  if (!a_nan && a.e != b.e) return a.e > b.e;
  return a.element < b.element;
}

std::vector<double> errors(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  const double special[] = {0.0,
                            -0.0,
                            1.0,
                            -1.0,
                            std::numeric_limits<double>::quiet_NaN(),
                            -std::numeric_limits<double>::quiet_NaN(),
                            std::numeric_limits<double>::infinity(),
                            -std::numeric_limits<double>::infinity(),
                            std::numeric_limits<double>::denorm_min(),
                            -std::numeric_limits<double>::denorm_min(),
                            std::numeric_limits<double>::max(),
                            0.5};
  std::vector<double> e(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t r = rng() % 4;
    if (r == 0)
      e[i] = special[rng() % (sizeof(special) / sizeof(special[0]))];
    else if (r == 1)
      e[i] = static_cast<double>(static_cast<int>(rng() % 9) - 4) / 4.0;  // many ties
    else
      e[i] = std::ldexp(static_cast<double>(rng()) / 4294967296.0 - 0.3,
                        static_cast<int>(rng() % 40) - 20);
  }
  return e;
}

TEST(RadixSort, SameOrderAsTheComparisonSort) {
  for (size_t n : {0, 1, 2, 5, 63, 64, 65, 300, 4096, 50000})
    for (uint32_t seed : {1u, 2u, 3u}) {
      const std::vector<double> e = errors(n, seed);
      std::vector<Item> want;
      std::vector<KeyedElement> got, scratch;
      for (size_t i = 0; i < n; ++i) {
        const int64_t element = static_cast<int64_t>(3 * i + 1);  // ascending, as gathered
        want.push_back(Item{e[i], element});
        got.push_back(KeyedElement{culoss::cpu::descending_key(e[i]), element});
      }
      std::sort(want.begin(), want.end(), before);
      culoss::cpu::radix_sort(got, scratch);
      ASSERT_EQ(want.size(), got.size());
      for (size_t i = 0; i < n; ++i)
        ASSERT_EQ(want[i].element, got[i].element)
            << "n " << n << ", seed " << seed << ", at " << i;
    }
}

TEST(RadixSort, KeysOfTheSameError) {
  using culoss::cpu::descending_key;
  EXPECT_EQ(descending_key(0.0), descending_key(-0.0));
  EXPECT_EQ(0u, descending_key(std::nan("")));
  EXPECT_EQ(0u, descending_key(-std::nan("")));
  EXPECT_LT(descending_key(std::nan("")), descending_key(std::numeric_limits<double>::infinity()));
  EXPECT_LT(descending_key(2.0), descending_key(1.0));
  EXPECT_LT(descending_key(-1.0), descending_key(-2.0));
}

}  // namespace
