// Exact Euclidean distance transforms, one axis at a time (Felzenszwalb & Huttenlocher, "Distance
// Transforms of Sampled Functions", Theory of Computing 8, 2012).
//
// The squared distance from pixel p to the nearest seed is D(p) = min_q Σ_a w_a (p_a − q_a)²,
// w_a = spacing_a². The minimum separates over the axes: starting from f = 0 on seeds and +∞
// elsewhere, one pass along axis a replaces every line of f by
//     d(p) = min_q w (p − q)² + f(q),
// the lower envelope of the parabolas rooted at each q with a finite f(q). The envelope is built
// left to right in one sweep (each parabola enters once and leaves at most once: a stack of
// vertices v and of the boundaries z between their intervals), then read off in a second sweep:
// O(n) per line, so O(k · P) for a k-axis image. Every value is a sum of exact terms w·Δ², so the
// result is the exact squared distance up to the rounding of those products (what SciPy's
// distance_transform_edt computes too). A line with no finite f stays +∞: an image with no seed at
// all has no distances, which the caller turns into its convention (empty or full masks).
//
// The line routine is __host__ __device__: the CPU runs it per line on the thread pool, CUDA one
// thread per line (kernels/geometry/geometry.cuh drives both).
#pragma once

#include <cstdint>
#include <limits>

#include "kernels/common/macros.cuh"

namespace culoss {

constexpr double kEdtInf = std::numeric_limits<double>::infinity();

// One line: f[i·stride] → d[i·stride], i < n, weighted by w = spacing². v (n entries) and z (n + 1)
// are the envelope's scratch.
CULOSS_HD void edt_line(const double* f, double* d, int64_t n, int64_t stride, double w,
                               int64_t* v, double* z) {
  int64_t k = -1;  // top of the envelope's stack
  for (int64_t q = 0; q < n; ++q) {
    const double fq = f[q * stride];
    if (!(fq < kEdtInf)) continue;  // no parabola here
    const double hq = fq + w * static_cast<double>(q) * static_cast<double>(q);
    double s = -kEdtInf;
    while (k >= 0) {
      const int64_t r = v[k];
      const double hr = f[r * stride] + w * static_cast<double>(r) * static_cast<double>(r);
      // Where the parabolas of r and q meet: beyond it q is lower.
      s = (hq - hr) / (2.0 * w * static_cast<double>(q - r));
      if (s > z[k]) break;
      --k;  // r is nowhere the lowest any more
    }
    if (k < 0) s = -kEdtInf;
    ++k;
    v[k] = q;
    z[k] = s;
    z[k + 1] = kEdtInf;
  }
  if (k < 0) {
    for (int64_t p = 0; p < n; ++p) d[p * stride] = kEdtInf;
    return;
  }
  int64_t j = 0;
  for (int64_t p = 0; p < n; ++p) {
    while (z[j + 1] < static_cast<double>(p)) ++j;
    const double dp = static_cast<double>(p - v[j]);
    d[p * stride] = w * dp * dp + f[v[j] * stride];
  }
}

}  // namespace culoss
