// Exact Euclidean distance transforms of a 0/1 mask B, one axis at a time (Felzenszwalb &
// Huttenlocher, "Distance Transforms of Sampled Functions", Theory of Computing 8, 2012).
//
// The squared distance from pixel p to the nearest seed is D(p) = min_q Σ_a w_a (p_a − q_a)²,
// w_a = spacing_a². The minimum separates over the axes: starting from f = 0 on seeds and +∞
// elsewhere, one pass along axis a replaces every line of f by
//     d(p) = min_q w (p − q)² + f(q).
//
// Both transforms of a mask in one plane. d_B (in B: to the nearest pixel outside B) has its
// seeds outside B, d̄_B (outside B: to the nearest pixel of B) its seeds in B; each is 0 on its
// own seeds after every axis. So one plane h holds both: at a pixel of B the (partial) squared
// d_B, elsewhere the squared d̄_B — "the squared distance to the nearest pixel of the other
// class", read with the mask bit. Every pass below reads and writes h in place, one line at a
// time, and does the work of both transforms at once.
//
// Axis 0 (edt_scan_lines): f is 0 or +∞, so d is the squared distance along the line to the
// nearest pixel of the other class: two sweeps of a counter, no envelope. Lines of axis 0 are
// adjacent in memory, so a worker takes several at once (the inner loop runs across them). A
// 1-D grid has no other axis: its values come from h in a pass of their own.
//
// Axes ≥ 1 (edt_runs_line): a line splits into maximal runs of one class. For p in a run
// [a, b], the other class's pixels a − 1 and b + 1 (where they exist) are seeds (f = 0), and any
// pixel beyond them is farther with f ≥ 0, so only the run's own pixels and those two seeds
// can be nearest: each run is a problem of its own. A short run takes the direct minimum,
// searched outwards from p and stopped once w·Δ² alone reaches the best value found; a long
// one the lower envelope of its parabolas (FH: built left to right, each parabola entering once
// and leaving at most once, then read off), O(length). Either way O(n) per line for runs up to a
// fixed length, O(k · P) for a k-axis image.
//
// Every value is a sum of exact terms w·Δ² (Δ an integer), so the result is the exact squared
// distance up to the rounding of those products (what SciPy's distance_transform_edt computes
// too; the direct minimum and the envelope pick the same minimum up to that rounding). A pixel
// with no pixel of the other class anywhere stays +∞: the mask is empty or full, which the
// caller turns into its convention.
//
// The line routines are __host__ __device__: the CPU runs them over chunks of lines on the
// thread pool, CUDA one thread per line (kernels/geometry/geometry.cuh drives both).
#pragma once

#include <cstdint>
#include <limits>

#include "kernels/common/macros.cuh"

namespace culoss {

constexpr double kEdtInf = std::numeric_limits<double>::infinity();

// Runs up to this length take the direct minimum (at most this many candidates per pixel, and
// far fewer in practice); longer ones the envelope.
constexpr int64_t kEdtDirectRun = 12;

// Doubles of scratch one line of n pixels needs (edt_runs_line): positions and values of up to
// n + 2 parabolas, n + 3 boundaries.
CULOSS_HD constexpr int64_t edt_line_scratch(int64_t n) { return 3 * n + 7; }

CULOSS_HD bool edt_in(double m) { return m > 0.5; }

// Stands for +∞ in the counters of edt_scan_lines: finite, so that 0 · it is 0 (branch-free
// updates), and absorbing (it + 1 = it).
constexpr double kEdtFar = 1e300;

// Axis 0, lines r0 … r0 + width − 1 (width ≤ kTile) of one image: pixel i of line r at
// mask[i·stride + r]. h receives w·Δ², Δ the distance along the line to the nearest pixel of the
// other class (+∞ where the line has none). Branch-free, so that the inner loop, across the
// lines, vectorises.
template <int kTile>
CULOSS_HD void edt_scan_lines(const double* __restrict__ mask, double* __restrict__ h, int64_t n,
                              int64_t stride, int64_t width, double w) {
  double run[kTile], prev[kTile];  // distance counter and class of the previous pixel per line
  for (int64_t t = 0; t < width; ++t) {
    run[t] = kEdtFar;
    prev[t] = edt_in(mask[t]) ? 1.0 : 0.0;
  }
  // Forward: the distance to the nearest pixel of the other class at or before i, into h.
  for (int64_t i = 0; i < n; ++i) {
    const double* __restrict__ m = mask + i * stride;
    double* __restrict__ hi = h + i * stride;
    for (int64_t t = 0; t < width; ++t) {
      const double b = edt_in(m[t]) ? 1.0 : 0.0, same = b == prev[t] ? 1.0 : 0.0;
      run[t] = same * run[t] + 1.0;  // 1 after a change of class
      prev[t] = b;
      hi[t] = run[t];
    }
  }
  // Backward: the same after i; the nearer of the two, squared and weighted.
  for (int64_t t = 0; t < width; ++t) run[t] = kEdtFar;  // prev: the class of pixel n − 1
  for (int64_t i = n - 1; i >= 0; --i) {
    const double* __restrict__ m = mask + i * stride;
    double* __restrict__ hi = h + i * stride;
    for (int64_t t = 0; t < width; ++t) {
      const double b = edt_in(m[t]) ? 1.0 : 0.0, same = b == prev[t] ? 1.0 : 0.0;
      run[t] = same * run[t] + 1.0;
      prev[t] = b;
      const double d = hi[t] < run[t] ? hi[t] : run[t];
      hi[t] = w * d * d + (d < kEdtFar ? 0.0 : kEdtInf);  // (a select here stops vectorising)
    }
  }
}

// Axis ≥ 1, one line of n pixels at offsets i·stride: h (over the earlier axes) → over this
// axis too, through store(offset, in B, value), called once per pixel after the line's reads of
// that pixel (so store may overwrite h or the mask there). scratch: edt_line_scratch(n) doubles.
template <class Store>
CULOSS_HD void edt_runs_line(const double* mask, const double* h, int64_t n, int64_t stride,
                             double w, double* scratch, const Store& store) {
  double* pos = scratch;          // the envelope's parabolas: vertex positions,
  double* val = pos + n + 2;      //   their f (a direct run: the run's h),
  double* z = val + n + 2;        //   and the boundaries between their intervals
  int64_t a = 0;
  bool in = edt_in(mask[0]);
  while (a < n) {
    int64_t b = a;  // [a, b]: the run of class `in` from a
    bool next_in = in;
    while (b + 1 < n) {
      next_in = edt_in(mask[(b + 1) * stride]);
      if (next_in != in) break;
      ++b;
    }
    const bool left = a > 0, right = b + 1 < n;  // the other class's seeds a − 1, b + 1
    if (b - a < kEdtDirectRun) {
      for (int64_t q = a; q <= b; ++q) val[q - a] = h[q * stride];
      for (int64_t p = a; p <= b; ++p) {
        double best = val[p - a];
        if (left) {
          const double d = static_cast<double>(p - a + 1), v = w * d * d;
          best = v < best ? v : best;
        }
        if (right) {
          const double d = static_cast<double>(b + 1 - p), v = w * d * d;
          best = v < best ? v : best;
        }
        for (int64_t d = 1; p - d >= a || p + d <= b; ++d) {
          const double dd = static_cast<double>(d), wd = w * dd * dd;
          if (!(wd < best)) break;  // every farther candidate is at least wd
          if (p - d >= a) {
            const double v = wd + val[p - d - a];
            best = v < best ? v : best;
          }
          if (p + d <= b) {
            const double v = wd + val[p + d - a];
            best = v < best ? v : best;
          }
        }
        store(p * stride, in, best);
      }
    } else {
      // The lower envelope of the parabolas w (x − q)² + f(q): a − 1, the run's finite f, b + 1.
      int64_t k = -1;  // top of the stack
      auto push = [&](double q, double fq) {
        const double hq = fq + w * q * q;
        double s = -kEdtInf;
        while (k >= 0) {
          const double r = pos[k];
          // Where the parabolas of r and q meet: beyond it q is lower.
          s = (hq - (val[k] + w * r * r)) / (2.0 * w * (q - r));
          if (s > z[k]) break;
          --k;  // r is nowhere the lowest any more
        }
        if (k < 0) s = -kEdtInf;
        ++k;
        pos[k] = q;
        val[k] = fq;
        z[k] = s;
        z[k + 1] = kEdtInf;
      };
      if (left) push(static_cast<double>(a - 1), 0.0);
      for (int64_t q = a; q <= b; ++q) {
        const double fq = h[q * stride];
        if (fq < kEdtInf) push(static_cast<double>(q), fq);
      }
      if (right) push(static_cast<double>(b + 1), 0.0);
      if (k < 0) {  // no parabola: no pixel of the other class anywhere
        for (int64_t p = a; p <= b; ++p) store(p * stride, in, kEdtInf);
      } else {
        int64_t j = 0;
        for (int64_t p = a; p <= b; ++p) {
          const double x = static_cast<double>(p);
          while (z[j + 1] < x) ++j;
          const double d = x - pos[j];
          store(p * stride, in, w * d * d + val[j]);
        }
      }
    }
    a = b + 1;
    in = next_in;
  }
}

}  // namespace culoss
