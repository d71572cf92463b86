// The geometry steps of a program with map terms (kernels/common/terms.cuh, GeometryOp), written
// once for both backends as sequences of data-parallel operations over an executor:
//   ex.run(count, op, grain) calls op(i) for every i in [0, count) (the CPU: chunks of `grain` on
//   the thread pool; CUDA: one thread per i) and returns when all are done (in stream order);
//   ex.run_ranges(count, op, grain) the same with op.range(b, e) over [b, e) ⊂ [0, count) (the
//   CPU: one call per chunk; CUDA: one call per i, e = b + 1); Exec::kLineTile lines of axis 0
//   are walked together (the CPU: several, so the inner loop runs across them; CUDA: 1);
//   ex.run_grid(g, images, op) calls op(i, h) for every pixel i of `images` grids, h its
//   neighbourhood (skeleton.cuh; the CPU walks rows and updates h along each, CUDA computes it
//   per thread).
// Every op writes only its own element (or line), so results do not depend on the thread count.
//
//   1. seed       — per pixel: each map term writes its seeds (SeedOp; before step 2).
//   2. transform  — per term, by its unit's kGeometry:
//        GEO_DISTANCE: every map is a 0/1 mask B; two exact distance transforms (edt.cuh) give
//          d_B (in B: to the nearest pixel outside B) and d̄_B (outside B: to the nearest pixel
//          of B), both in one plane, one pass per axis, and after the last axis the unit's
//          distance_value(d_B, d̄_B) replaces the mask. A mask that is empty or full has no
//          distances: 0 there.
//        GEO_SKELETON: soft skeletons (skeleton.cuh) of map kSkelP into kSkelSP and of map
//          kSkelT into kSkelST.
//   3. backward   — after step 3, for kMapGrad terms (GEO_SKELETON): the upstream map holds
//      dℓ/dS_p; it becomes dℓ/dp by reverse-mode through the skeleton. Nothing of the forward is
//      kept: step j of the backward recomputes x_j and s_{j−1} from the seeds (O(iterations²)
//      morphology passes), so the extra memory is a fixed number of planes for any iteration
//      count.
#pragma once

#include <cstdint>

#include "kernels/common/passes.cuh"
#include "kernels/geometry/edt.cuh"
#include "kernels/geometry/skeleton.cuh"

namespace culoss {

// Scratch planes of the transforms (N·C·P elements each), carved by the plan.
constexpr int kDistancePlanes = 1;  // both transforms, in place (edt.cuh)
constexpr int kSkeletonPlanes = 6;  // x (two), s, two gradients of x, one of the opening
constexpr int kSkeletonSelections = 2;  // of an erosion and of an opening

struct GeometryBuffers {
  double* maps;  // Program::map_width planes
  double* plane[kSkeletonPlanes];
  int64_t* sel[kSkeletonSelections];
  double* edt;  // distance transforms: envelope scratch per line (distance_scratch)
  int64_t images, P;  // planes hold `images` grids of P pixels
};

// ---- ops --------------------------------------------------------------------------------------

template <class T, class R>
struct SeedOp {
  Program prog;
  ElementArgs a;
  const T* x;
  double* maps;
  CULOSS_HD void operator()(int64_t i) const {
    pixel_seed<R>(prog, a, x, maps, i / a.L.P, i % a.L.P);
  }
};

template <class T, class R>
struct UpstreamOp {
  Program prog;
  ElementArgs a;
  const T* x;
  double* maps;
  const double* coefs;
  CULOSS_HD void operator()(int64_t i) const {
    pixel_upstream<R>(prog, a, x, maps, coefs, i / a.L.P, i % a.L.P);
  }
};

// Doubles of envelope scratch the distance transforms of `images` grids g need: one
// edt_line_scratch per line of the axis ≥ 1 that has the most (the CPU touches only one per
// chunk of lines, CUDA one per line).
CULOSS_HD int64_t distance_scratch(const Grid& g, int64_t images) {
  int64_t most = 0;
  for (int axis = 1; axis < g.k; ++axis) {
    const int64_t n = g.extent[axis], need = images * (g.P / n) * edt_line_scratch(n);
    most = need > most ? need : most;
  }
  return most;
}

// Where a distance pass stores: into h after an axis before the last; after the last, the
// unit's value of the two distances into the mask's map (the pixel's own class says which of
// the two the squared distance d2 is; the other is 0).
struct DistanceStore {
  double* h;    // NULL after the last axis
  double* dst;  // the mask's map
  TermSpec ts;
  int map;
  CULOSS_HD DistanceStore at(int64_t offset) const {
    DistanceStore s = *this;
    if (s.h) s.h += offset;
    s.dst += offset;
    return s;
  }
  CULOSS_HD void operator()(int64_t i, bool in, double d2) const {
    if (h) {
      h[i] = d2;
      return;
    }
    // +∞: no pixel of the other class anywhere, the mask is empty or full, where both
    // distances are 0 by definition.
    const double d = d2 < kEdtInf ? sqrt(d2) : 0.0;
    double value = 0.0;
    visit_term(ts.kind, [&](auto unit) {
      value = decltype(unit)::distance_value(ts, map, in ? d : 0.0, in ? 0.0 : d);
    });
    dst[i] = value;
  }
};

// Axis 0 of both transforms of `mask` into h: lines [l0, l1), kTile adjacent ones at a time.
template <int kTile>
struct DistanceScanOp {
  Grid g;
  double w;  // spacing²
  const double* mask;
  double* h;
  CULOSS_HD void range(int64_t l0, int64_t l1) const {
    const int64_t n = g.extent[0], per_image = g.P / n;  // = the stride of axis 0
    for (int64_t l = l0; l < l1;) {
      const int64_t image = l / per_image, r = l % per_image;
      int64_t width = per_image - r < l1 - l ? per_image - r : l1 - l;
      width = width < kTile ? width : kTile;
      const int64_t start = image * g.P + r;
      edt_scan_lines<kTile>(mask + start, h + start, n, per_image, width, w);
      l += width;
    }
  }
};

// A 1-D grid's values, from h after its only axis.
struct DistanceValueOp {
  const double* mask;
  const double* h;
  DistanceStore store;
  CULOSS_HD void operator()(int64_t i) const { store(i, edt_in(mask[i]), h[i]); }
};

// Axis ≥ 1 of both transforms: lines [l0, l1) along `axis`, in place in h (the first line's
// scratch serves them all).
struct DistanceRunsOp {
  Grid g;
  int axis;
  double w;  // spacing²
  const double* mask;
  const double* h;
  DistanceStore store;
  double* scratch;
  CULOSS_HD void range(int64_t l0, int64_t l1) const {
    const int64_t n = g.extent[axis], stride = g.stride[axis], per_image = g.P / n;
    double* s = scratch + l0 * edt_line_scratch(n);
    for (int64_t l = l0; l < l1; ++l) {
      const int64_t image = l / per_image, r = l % per_image;
      const int64_t start = image * g.P + (r / stride) * n * stride + r % stride;
      edt_runs_line(mask + start, h + start, n, stride, w, s, store.at(start));
    }
  }
};

// Grid ops: op(i, h) at element i with its neighbourhood h (ex.run_grid computes h: per
// element on CUDA, incrementally along rows on the CPU).
struct ErodeOp {
  const double* x;
  double* y;
  int64_t* sel;  // NULL: not kept
  template <class H>
  CULOSS_HD void operator()(int64_t i, const H& h) const {
    if (!sel) {
      y[i] = erode_value(x, h, i);
      return;
    }
    y[i] = erode_at(x, h, i, &sel[i]);
  }
};

// open(x) = dilate(E) at i (E = erode(x)), then s = relu(x − open(x)) at level 0 and
// s + relu(δ − s·δ) with δ = relu(x − open(x)) after: one pass.
struct SkeletonAccumulateOp {
  const double *x, *E;
  double* s;
  bool first;
  template <class H>
  CULOSS_HD void operator()(int64_t i, const H& h) const {
    const double z = x[i] - dilate_value(E, h, i);
    const double delta = z > 0.0 ? z : 0.0;
    if (first) {
      s[i] = delta;
      return;
    }
    const double u = delta - s[i] * delta;
    s[i] += u > 0.0 ? u : 0.0;
  }
};

// Backward of level j at one element (relu' = 0 at 0, as the frameworks take it): open(x_j) =
// dilate(E) at i, E = x_{j+1} (its selection kept), then g_s (dℓ/ds_j in, dℓ/ds_{j−1} out),
// g_x = dℓ/dx_j through δ_j, and t = dℓ/d open(x_j) = −(that part), for the opening's backward.
struct SkeletonBackOp {
  const double *x, *E;
  int64_t* sel;
  const double* s_prev;  // NULL at level 0 (s_0 = δ_0)
  double *g_s, *g_x, *t;
  template <class H>
  CULOSS_HD void operator()(int64_t i, const H& h) const {
    const double z = x[i] - dilate_at(E, h, i, &sel[i]);
    const double delta = z > 0.0 ? z : 0.0;
    double g_delta = g_s[i];
    if (s_prev) {
      const double sp = s_prev[i];
      const double g_u = delta - sp * delta > 0.0 ? g_s[i] : 0.0;
      g_delta = g_u * (1.0 - sp);
      g_s[i] -= g_u * delta;
    }
    const double g_z = z > 0.0 ? g_delta : 0.0;
    g_x[i] = g_z;  // the first part of dℓ/dx_j
    t[i] = -g_z;
  }
};

struct ErodeBackOp {
  const double* g_out;
  const int64_t* sel;
  double* g_in;
  bool accumulate;
  template <class H>
  CULOSS_HD void operator()(int64_t i, const H& h) const {
    const double v = erode_back_at(g_out, sel, h, i);
    g_in[i] = accumulate ? g_in[i] + v : v;
  }
};

struct DilateBackOp {
  const double* g_out;
  const int64_t* sel;
  double* g_in;
  bool accumulate;
  template <class H>
  CULOSS_HD void operator()(int64_t i, const H& h) const {
    const double v = dilate_back_at(g_out, sel, h, i);
    g_in[i] = accumulate ? g_in[i] + v : v;
  }
};

struct FillOp {
  double* dst;
  double value;
  CULOSS_HD void operator()(int64_t i) const { dst[i] = value; }
};

struct CopyOp {
  const double* src;
  double* dst;
  CULOSS_HD void operator()(int64_t i) const { dst[i] = src[i]; }
};

// ---- drivers ----------------------------------------------------------------------------------

// Grains of the CPU executor: elements are cheap, a line costs its length.
constexpr int64_t kGeometryGrain = int64_t(1) << 14;

// Runs the skeleton recursion from `x0` up to level L: s_L into `s`. The opening of level j is
// dilate(x_{j+1}) (x_{j+1} = erode(x_j) is its erosion), so each level is one erosion and one
// dilation. Returns x_{L+1}; *x_L receives x_L. The x's alternate between two scratch planes.
template <class Exec>
const double* skeleton_forward(Exec& ex, const GeometryBuffers& b, const Grid& g,
                               const double* x0, int L, double* s, const double** x_L = nullptr) {
  double *xa = b.plane[0], *xb = b.plane[1];
  const double* x = x0;
  const double* next = x0;
  for (int level = 0; level <= L; ++level) {
    double* out = x == xa ? xb : xa;
    ex.run_grid(g, b.images, ErodeOp{x, out, nullptr});
    next = out;
    ex.run_grid(g, b.images, SkeletonAccumulateOp{x, next, s, level == 0});
    if (level < L) x = next;
  }
  if (x_L) *x_L = x;
  return next;
}

// Step 2 of the geometry (after the seed pass), every map term in program order.
template <class Exec>
void geometry_transform(Exec& ex, const Program& prog, const GeometryBuffers& b) {
  const Grid& g = prog.grid;
  const int64_t count = b.images * b.P, plane = count;
  if (count == 0) return;
  for (int t = 0; t < prog.count; ++t) {
    const TermSpec& ts = prog.term[t];
    double* maps = b.maps + static_cast<int64_t>(ts.map_offset) * plane;
    int op = GEO_NONE;
    visit_term(ts.kind, [&](auto unit) { op = decltype(unit)::kGeometry; });
    if (op == GEO_DISTANCE) {
      for (int m = 0; m < ts.map_count; ++m) {
        double* mask = maps + m * plane;
        double* h = b.plane[0];
        for (int axis = 0; axis < g.k; ++axis) {
          const int64_t n = g.extent[axis];
          const DistanceStore store{axis + 1 < g.k ? h : nullptr, mask, ts, m};
          if (axis == 0)
            ex.run_ranges(count / n, DistanceScanOp<Exec::kLineTile>{g, ts.spacing2[0], mask, h},
                          kGeometryGrain / n + 1);
          else
            ex.run_ranges(count / n,
                          DistanceRunsOp{g, axis, ts.spacing2[axis], mask, h, store, b.edt},
                          kGeometryGrain / n + 1);
        }
        if (g.k == 1)
          ex.run(count, DistanceValueOp{mask, h, DistanceStore{nullptr, mask, ts, m}},
                 kGeometryGrain);
      }
    } else if (op == GEO_SKELETON) {
      skeleton_forward(ex, b, g, maps + kSkelT * plane, ts.iterations, maps + kSkelST * plane);
      skeleton_forward(ex, b, g, maps + kSkelP * plane, ts.iterations, maps + kSkelSP * plane);
    }
  }
}

// Step 3 of the geometry (after the upstream pass): dℓ/dS_p → dℓ/dp in the upstream map.
// Level j (from J down to 0) needs x_j, x_{j+1} = erode(x_j) with its selections and s_{j−1}:
// all recomputed from p (the forward up to level j − 1, then one erosion). Its backward step
// gives dℓ/dx_j directly (through δ_j) and, through the opening dilate(x_{j+1}), a part of
// dℓ/dx_{j+1}, which is then complete and flows to x_j through the erosion.
template <class Exec>
void geometry_backward(Exec& ex, const Program& prog, const GeometryBuffers& b) {
  const Grid& g = prog.grid;
  const int64_t count = b.images * b.P, plane = count;
  if (count == 0) return;
  for (int t = 0; t < prog.count; ++t) {
    const TermSpec& ts = prog.term[t];
    int op = GEO_NONE;
    visit_term(ts.kind, [&](auto unit) {
      if (decltype(unit)::kMapGrad) op = decltype(unit)::kGeometry;
    });
    if (op != GEO_SKELETON) continue;
    double* maps = b.maps + static_cast<int64_t>(ts.map_offset) * plane;
    const double* p = maps + kSkelP * plane;
    double* g_s = maps + kSkelGrad * plane;  // dℓ/ds_j, level by level
    double *s = b.plane[2], *g_here = b.plane[3], *g_next = b.plane[4], *t_open = b.plane[5];
    int64_t *sel_x = b.sel[0], *sel_d = b.sel[1];
    ex.run(count, FillOp{g_next, 0.0}, kGeometryGrain);  // x_{J+1} enters only the last opening
    for (int j = ts.iterations; j >= 0; --j) {
      const double* x = p;
      if (j > 0) x = skeleton_forward(ex, b, g, p, j - 1, s);
      double* x_next = x == b.plane[0] ? b.plane[1] : b.plane[0];
      ex.run_grid(g, b.images, ErodeOp{x, x_next, sel_x});
      ex.run_grid(g, b.images,
                  SkeletonBackOp{x, x_next, sel_d, j > 0 ? s : nullptr, g_s, g_here, t_open});
      ex.run_grid(g, b.images, DilateBackOp{t_open, sel_d, g_next, true});
      ex.run_grid(g, b.images, ErodeBackOp{g_next, sel_x, g_here, true});
      double* tmp = g_here;
      g_here = g_next;
      g_next = tmp;
    }
    ex.run(count, CopyOp{g_next, g_s}, kGeometryGrain);
  }
}

}  // namespace culoss
