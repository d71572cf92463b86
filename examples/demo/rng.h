// culoss-demo: a seeded random source whose streams are the same with every C++ standard
// library (std::mt19937_64 is fully specified; the std:: distributions are not).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

namespace demo {

class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  // Uniform in [0, 1), 53 random bits.
  double uniform() { return double(g_() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform integer in [0, n), n >= 1.
  int64_t below(int64_t n) { return int64_t(uniform() * double(n)); }
  // Standard normal (Box-Muller).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u = uniform();
    while (u <= 0.0) u = uniform();
    const double v = uniform(), r = std::sqrt(-2.0 * std::log(u)), a = 6.283185307179586 * v;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  std::mt19937_64 g_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace demo
