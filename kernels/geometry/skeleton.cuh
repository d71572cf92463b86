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

// The axis coordinates of pixel q.
CULOSS_HD void grid_coords(const Grid& g, int64_t q, int64_t* c) {
  for (int a = 0; a < g.k; ++a) c[a] = (q / g.stride[a]) % g.extent[a];
}

// Calls f(j) for the cross of q (q and its in-range axis neighbours) in increasing index order.
template <class F>
CULOSS_HD void for_cross(const Grid& g, int64_t q, F&& f) {
  int64_t c[kMaxSpatialAxes];
  grid_coords(g, q, c);
  for (int a = 0; a < g.k; ++a)
    if (c[a] > 0) f(q - g.stride[a]);
  f(q);
  for (int a = g.k - 1; a >= 0; --a)
    if (c[a] + 1 < g.extent[a]) f(q + g.stride[a]);
}

// Calls f(j) for the in-range pixels of the 3^k window around q in increasing index order (the
// offsets in row-major order of (d_0, ..., d_{k-1}) ∈ {−1, 0, 1}^k).
template <class F>
CULOSS_HD void for_window(const Grid& g, int64_t q, F&& f) {
  int64_t c[kMaxSpatialAxes];
  grid_coords(g, q, c);
  int count = 1;
  for (int a = 0; a < g.k; ++a) count *= 3;
  for (int m = 0; m < count; ++m) {
    int rest = m, scale = count;
    int64_t j = q;
    bool inside = true;
    for (int a = 0; a < g.k; ++a) {
      scale /= 3;
      const int d = rest / scale - 1;
      rest %= scale;
      const int64_t ca = c[a] + d;
      inside = inside && ca >= 0 && ca < g.extent[a];
      j += d * g.stride[a];
    }
    if (inside) f(j);
  }
}

// erode(x) at q; *sel = the selected pixel.
CULOSS_HD double erode_at(const double* x, const Grid& g, int64_t q, int64_t* sel) {
  double best = x[q];
  int64_t at = -1;
  for_cross(g, q, [&](int64_t j) {
    if (at < 0 || x[j] < best) {
      best = x[j];
      at = j;
    }
  });
  *sel = at;
  return best;
}

// dilate(x) at q; *sel = the selected pixel.
CULOSS_HD double dilate_at(const double* x, const Grid& g, int64_t q, int64_t* sel) {
  double best = x[q];
  int64_t at = -1;
  for_window(g, q, [&](int64_t j) {
    if (at < 0 || x[j] > best) {
      best = x[j];
      at = j;
    }
  });
  *sel = at;
  return best;
}

// Backward of erode at input a of the grid starting at element `base` (selections and gradients
// are indexed over all grids): Σ of g_out over the cross pixels that selected a.
CULOSS_HD double erode_back_at(const double* g_out, const int64_t* sel, const Grid& g, int64_t a,
                               int64_t base) {
  double s = 0.0;
  for_cross(g, a, [&](int64_t j) {
    if (sel[base + j] == base + a) s += g_out[base + j];
  });
  return s;
}

// Backward of dilate at input a: Σ of g_out over the window pixels that selected a.
CULOSS_HD double dilate_back_at(const double* g_out, const int64_t* sel, const Grid& g, int64_t a,
                                int64_t base) {
  double s = 0.0;
  for_window(g, a, [&](int64_t j) {
    if (sel[base + j] == base + a) s += g_out[base + j];
  });
  return s;
}

}  // namespace culoss
