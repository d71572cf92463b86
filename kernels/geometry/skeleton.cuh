// Soft morphology on the grid of one (image, class), the steps of the soft skeleton of clDice
// (Shit et al., "clDice — a Novel Topology-Preserving Loss Function for Tubular Structure
// Segmentation", CVPR 2021):
//   erode(x)(q)  = min of x over q and its 2k axis neighbours (a min-pool of 3-windows along each
//                  axis, then the min over the axes), out-of-range neighbours left out;
//   dilate(x)(q) = max of x over the 3^k window around q, out-of-range pixels left out.
// Each value is one of its inputs, so its derivative is 1 at the selected input and 0 elsewhere;
// ties go to the lowest flat index (from the pixel itself, a candidate before it is taken when
// as good, one after it only when strictly better).
//
// The dilation is separable: the max over the 3^k window is a max over 3-windows along the last
// axis, then along the one before, ..., then along axis 0 (k passes of 3 candidates instead of
// 3^k). Its selection is the same element: "greater value, or equal value and lower index" is a
// total order, and along pass a the candidates' flat indices are ordered by their offset on axis a
// (the axes already reduced have smaller strides, their offsets sum to less than stride[a]).
//
// The backward of a pooling is a gather: the gradient of input a is the sum of the output
// gradients of the pixels whose window holds a and selected it. The windows are symmetric, so those
// pixels are a's own neighbours, visited in increasing index order: the sum has the same order on
// every backend and needs no atomics; the dilation's goes back through its k passes. Selections
// are one code per pixel (Selection): the erosion's is the code of the selected cross element
// (kCrossSelf, or 1 + 2a / 2 + 2a for the neighbour before / after along axis a), the dilation's
// holds two bits per pass (0, 1, 2: the neighbour before, the pixel itself, the neighbour after
// along its axis).
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

// The loops over the axes have K trips on interior pixels: unrolled, the CPU's row loop around
// them vectorises.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define CULOSS_AXES_UNROLL _Pragma("GCC unroll 3")
#else
#define CULOSS_AXES_UNROLL
#endif

// Whether the neighbour before / after along axis a is in range.
CULOSS_HD bool has_before(const Neighbourhood& h, int a) { return h.lo[a] < 0; }
CULOSS_HD bool has_after(const Neighbourhood& h, int a) { return h.hi[a] > 0; }
CULOSS_HD int64_t axis_stride(const Neighbourhood& h, int a) { return h.stride[a]; }

// A pixel with every neighbour in range, on a grid of K axes: the same code with the range tests
// known at compile time (the CPU's rows use it away from the borders; results are identical).
template <int K>
struct Interior {
  int64_t stride[kMaxSpatialAxes];
};
template <int K>
CULOSS_HD constexpr bool has_before(const Interior<K>&, int) { return true; }
template <int K>
CULOSS_HD constexpr bool has_after(const Interior<K>&, int) { return true; }
template <int K>
CULOSS_HD int64_t axis_stride(const Interior<K>& h, int a) { return h.stride[a]; }

// A pixel of a grid of K axes whose in-range tests are flags (the CPU's rows: their first and
// last pixels, whose flags come from the row's coordinates, counted along without divisions).
template <int K>
struct Bounds {
  int64_t stride[kMaxSpatialAxes];
  bool before[kMaxSpatialAxes], after[kMaxSpatialAxes];
};
template <int K>
CULOSS_HD bool has_before(const Bounds<K>& h, int a) { return h.before[a]; }
template <int K>
CULOSS_HD bool has_after(const Bounds<K>& h, int a) { return h.after[a]; }
template <int K>
CULOSS_HD int64_t axis_stride(const Bounds<K>& h, int a) { return h.stride[a]; }
template <int K>
CULOSS_HD constexpr int axes_of(const Bounds<K>&) { return K; }

// A pixel inside its row (both last-axis neighbours in range) on a row at the border of
// another axis: the in-range tests of the other axes are the row's, the same along it.
template <int K>
struct RowEdge : Bounds<K> {};
template <int K>
CULOSS_HD bool has_before(const RowEdge<K>& h, int a) { return a == K - 1 || h.before[a]; }
template <int K>
CULOSS_HD bool has_after(const RowEdge<K>& h, int a) { return a == K - 1 || h.after[a]; }
template <int K>
CULOSS_HD int64_t axis_stride(const RowEdge<K>& h, int a) { return h.stride[a]; }
template <int K>
CULOSS_HD constexpr int axes_of(const RowEdge<K>&) { return K; }

template <class H>
CULOSS_HD int axes_of(const H& h) { return h.k; }
template <int K>
CULOSS_HD constexpr int axes_of(const Interior<K>&) { return K; }

// A pixel's selection code (see the top of this file). 32 bits, though 6 would do: half as wide
// as the values, so the CPU's vectoriser fills its registers with values and codes alike.
using Selection = uint32_t;

// Selection codes of the erosion.
constexpr Selection kCrossSelf = 0;
CULOSS_HD constexpr Selection cross_before(int a) { return static_cast<Selection>(1 + 2 * a); }
CULOSS_HD constexpr Selection cross_after(int a) { return static_cast<Selection>(2 + 2 * a); }

// erode(x) at i, with the code of the selected element into `code`. Starting
// from i itself, the elements before it are taken in decreasing index order on ties too (so the
// last taken is the lowest index), the elements after it only when strictly smaller.
template <class H>
CULOSS_HD double erode_at(const double* x, const H& h, int64_t i, int64_t& code) {
  const int k = axes_of(h);
  double best = x[i];
  code = kCrossSelf;
  CULOSS_AXES_UNROLL
  for (int a = k - 1; a >= 0; --a)
    if (has_before(h, a)) {
      const double v = x[i - axis_stride(h, a)];
      const bool take = !(v > best);
      best = take ? v : best;
      code = take ? cross_before(a) : code;
    }
  CULOSS_AXES_UNROLL
  for (int a = k - 1; a >= 0; --a)
    if (has_after(h, a)) {
      const double v = x[i + axis_stride(h, a)];
      const bool take = v < best;
      best = take ? v : best;
      code = take ? cross_after(a) : code;
    }
  return best;
}

// Backward of erode at input i: Σ of g_out over the cross pixels that selected i.
template <class H>
CULOSS_HD double erode_back_at(const double* g_out, const Selection* sel, const H& h, int64_t i) {
  const int k = axes_of(h);
  double s = 0.0;
  CULOSS_AXES_UNROLL
  for (int a = 0; a < k; ++a)
    if (has_before(h, a)) {
      const int64_t j = i - axis_stride(h, a);
      const double g = g_out[j];  // loaded either way: no branch
      s += sel[j] == cross_after(a) ? g : 0.0;
    }
  const double g_i = g_out[i];
  s += sel[i] == kCrossSelf ? g_i : 0.0;
  CULOSS_AXES_UNROLL
  for (int a = k - 1; a >= 0; --a)
    if (has_after(h, a)) {
      const int64_t j = i + axis_stride(h, a);
      const double g = g_out[j];
      s += sel[j] == cross_before(a) ? g : 0.0;
    }
  return s;
}

// One pass of the separable dilation: the max of x over i and its neighbours along `axis`, with
// the pass's code (0 before, 1 itself, 2 after) into `code` (stored in bits 2·axis of the
// selection code). (The codes are 64-bit, as wide as the values: the CPU's vectoriser keeps
// them in the same lanes.)
template <class H>
CULOSS_HD double dilate_axis_at(const double* x, const H& h, int axis, int64_t i, int64_t& code) {
  const int64_t st = axis_stride(h, axis);
  double best = x[i];
  code = 1;
  if (has_before(h, axis)) {
    const double v = x[i - st];
    const bool take = !(v < best);
    best = take ? v : best;
    code = take ? 0 : code;
  }
  if (has_after(h, axis)) {
    const double v = x[i + st];
    const bool take = v > best;
    best = take ? v : best;
    code = take ? 2 : code;
  }
  return best;
}

// Backward of one dilation pass at input i: Σ of g_out over i and its neighbours along `axis`
// whose pass selected i.
template <class H>
CULOSS_HD double dilate_axis_back_at(const double* g_out, const Selection* sel, const H& h,
                                     int axis, int64_t i) {
  const int64_t st = axis_stride(h, axis);
  const int shift = 2 * axis;
  double s = 0.0;
  if (has_before(h, axis)) {
    const double g = g_out[i - st];  // loaded either way: no branch
    s += ((sel[i - st] >> shift) & 3) == 2 ? g : 0.0;
  }
  const double g_i = g_out[i];
  s += ((sel[i] >> shift) & 3) == 1 ? g_i : 0.0;
  if (has_after(h, axis)) {
    const double g = g_out[i + st];
    s += ((sel[i + st] >> shift) & 3) == 0 ? g : 0.0;
  }
  return s;
}

}  // namespace culoss
