// Soft morphology on the grid of one (image, class), the steps of the soft skeleton of clDice
// (Shit et al., "clDice — a Novel Topology-Preserving Loss Function for Tubular Structure
// Segmentation", CVPR 2021):
//   erode(x)(q)  = min of x over q and its 2k axis neighbours (a min-pool of 3-windows along each
//                  axis, then the min over the axes), out-of-range neighbours left out;
//   dilate(x)(q) = max of x over the 3^k window around q, out-of-range pixels left out.
// Each value is one of its inputs, so its derivative is 1 at the selected input and 0 elsewhere;
// ties go to the lowest flat index, by visiting candidates in increasing index order and keeping
// only a strictly better one.
//
// The backward of a pooling is a gather: the gradient of input a is the sum of the output
// gradients of the pixels whose window holds a and selected it. The windows are symmetric, so those
// pixels are a's own neighbours, visited in a fixed order: the sum has the same order on every
// backend and needs no atomics. Selections are stored as flat pixel indices (one int64 per pixel).
#pragma once

#include <cstdint>

#include "kernels/common/terms.cuh"  // Grid

namespace culoss {

// The maps of GEO_SKELETON terms (kernels/geometry/geometry.cuh fills them).
enum SkeletonMap : int {
  kSkelP = 0,     // seed: the prediction
  kSkelT = 1,     // seed: the target
  kSkelSP = 2,    // skel(prediction)
  kSkelST = 3,    // skel(target)
  kSkelGrad = 4,  // upstream dℓ/dS_p, then dℓ/dp
  kSkelMaps = 5,
};

// The in-range offsets of a pixel along each axis: [lo, hi] ⊂ [−1, 1] (axes beyond k: [0, 0]
// with stride 0). Pixels are addressed by their element index i in planes of whole grids; the
// neighbours of an in-range offset are in the same grid.
struct Neighbourhood {
  int k;
  int lo[kMaxSpatialAxes], hi[kMaxSpatialAxes];
  int64_t stride[kMaxSpatialAxes];
};

// The neighbourhood of pixel q of a grid (q = i − the grid's first element).
CULOSS_HD Neighbourhood neighbourhood(const Grid& g, int64_t q) {
  Neighbourhood h;
  h.k = g.k;
  for (int a = 0; a < kMaxSpatialAxes; ++a) {
    if (a < g.k) {
      const int64_t c = (q / g.stride[a]) % g.extent[a];
      h.lo[a] = c > 0 ? -1 : 0;
      h.hi[a] = c + 1 < g.extent[a] ? 1 : 0;
      h.stride[a] = g.stride[a];
    } else {
      h.lo[a] = h.hi[a] = 0;
      h.stride[a] = 0;
    }
  }
  return h;
}

// Calls f(j) for the cross of i (i and its in-range axis neighbours) in increasing index order.
template <class F>
CULOSS_HD void for_cross(const Neighbourhood& h, int64_t i, F&& f) {
  for (int a = 0; a < h.k; ++a)
    if (h.lo[a] < 0) f(i - h.stride[a]);
  f(i);
  for (int a = h.k - 1; a >= 0; --a)
    if (h.hi[a] > 0) f(i + h.stride[a]);
}

// A pixel with every neighbour in range, on a grid of K axes: the same visits with loop bounds
// known at compile time (the CPU's rows use it away from the borders; results are identical).
template <int K>
struct Interior {
  int64_t stride[kMaxSpatialAxes];
};

template <int K, class F>
CULOSS_HD void for_cross(const Interior<K>& h, int64_t i, F&& f) {
  for (int a = 0; a < K; ++a) f(i - h.stride[a]);
  f(i);
  for (int a = K - 1; a >= 0; --a) f(i + h.stride[a]);
}

template <int K, class F>
CULOSS_HD void for_window(const Interior<K>& h, int64_t i, F&& f) {
  constexpr int r0 = K >= 1 ? 1 : 0, r1 = K >= 2 ? 1 : 0, r2 = K >= 3 ? 1 : 0;
  const int64_t s0 = h.stride[0], s1 = K >= 2 ? h.stride[1] : 0, s2 = K >= 3 ? h.stride[2] : 0;
  for (int d0 = -r0; d0 <= r0; ++d0)
    for (int d1 = -r1; d1 <= r1; ++d1)
      for (int d2 = -r2; d2 <= r2; ++d2) f(i + d0 * s0 + d1 * s1 + d2 * s2);
}

// Calls f(j) for the in-range pixels of the 3^k window around i in increasing index order (the
// offsets in row-major order of (d_0, ..., d_{k-1}) ∈ {−1, 0, 1}^k).
template <class F>
CULOSS_HD void for_window(const Neighbourhood& h, int64_t i, F&& f) {
  for (int d0 = h.lo[0]; d0 <= h.hi[0]; ++d0)
    for (int d1 = h.lo[1]; d1 <= h.hi[1]; ++d1)
      for (int d2 = h.lo[2]; d2 <= h.hi[2]; ++d2)
        f(i + d0 * h.stride[0] + d1 * h.stride[1] + d2 * h.stride[2]);
}

// erode(x) at i; *sel = the selected element.
template <class H>
CULOSS_HD double erode_at(const double* x, const H& h, int64_t i, int64_t* sel) {
  double best = x[i];
  int64_t at = -1;
  for_cross(h, i, [&](int64_t j) {
    if (at < 0 || x[j] < best) {
      best = x[j];
      at = j;
    }
  });
  *sel = at;
  return best;
}

// dilate(x) at i; *sel = the selected element.
template <class H>
CULOSS_HD double dilate_at(const double* x, const H& h, int64_t i, int64_t* sel) {
  double best = x[i];
  int64_t at = -1;
  for_window(h, i, [&](int64_t j) {
    if (at < 0 || x[j] > best) {
      best = x[j];
      at = j;
    }
  });
  *sel = at;
  return best;
}

// The values alone (no selection to track: the forward of the skeleton), which compile to plain
// min / max instructions.
template <class H>
CULOSS_HD double erode_value(const double* x, const H& h, int64_t i) {
  double best = x[i];
  for_cross(h, i, [&](int64_t j) { best = x[j] < best ? x[j] : best; });
  return best;
}
template <class H>
CULOSS_HD double dilate_value(const double* x, const H& h, int64_t i) {
  double best = x[i];
  for_window(h, i, [&](int64_t j) { best = x[j] > best ? x[j] : best; });
  return best;
}

// Backward of erode at input i: Σ of g_out over the cross pixels that selected i.
template <class H>
CULOSS_HD double erode_back_at(const double* g_out, const int64_t* sel, const H& h,
                               int64_t i) {
  double s = 0.0;
  for_cross(h, i, [&](int64_t j) {
    if (sel[j] == i) s += g_out[j];
  });
  return s;
}

// Backward of dilate at input i: Σ of g_out over the window pixels that selected i.
template <class H>
CULOSS_HD double dilate_back_at(const double* g_out, const int64_t* sel, const H& h,
                                int64_t i) {
  double s = 0.0;
  for_window(h, i, [&](int64_t j) {
    if (sel[j] == i) s += g_out[j];
  });
  return s;
}

}  // namespace culoss
