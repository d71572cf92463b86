// The geometry steps of a program with map terms (kernels/common/terms.cuh, GeometryOp), written
// once for both backends as sequences of data-parallel operations over an executor:
//   ex.run(count, op, grain) calls op(i) for every i in [0, count) (the CPU: chunks of `grain` on
//   the thread pool; CUDA: one thread per i) and returns when all are done (in stream order);
//   ex.run_ranges(count, op, grain) the same with op.range(b, e) over [b, e) ⊂ [0, count) (the
//   CPU: one call per chunk; CUDA: one call per i, e = b + 1); Exec::kLineTile lines of axis 0
//   are walked together (the CPU: several, so the inner loop runs across them; CUDA: 1);
//   ex.run_grid(g, images, op) calls op(i, h) for every pixel i of `images` grids, h its
//   neighbourhood (skeleton.cuh; the CPU walks rows and updates h along each, CUDA computes it
//   per thread); ex.skeleton_group(images, P) is how many images the skeleton's steps take
//   through all their levels at a time (the CPU: as many as keep their planes in cache; CUDA:
//   all).
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
//   3. backward   — after the upstream pass, for kMapGrad terms (GEO_SKELETON): the upstream map
//      holds dℓ/dS_p; it becomes dℓ/dp by reverse-mode through the skeleton. x_j and s_{j−1} of the
//      last kSkeletonSlots levels are kept in fixed slots (by step 2's forward of p, for the last
//      such term; else by a rerun of it); the backward goes back through those levels and
//      refills the slots from p for the levels below (a rerun per kSkeletonSlots levels). The
//      extra memory is a fixed number of planes for any iteration count; with ITERATIONS ≤
//      kSkeletonSlots (the default 3) nothing of the forward runs again.
#pragma once

#include <cstdint>

#include "kernels/common/passes.cuh"
#include "kernels/geometry/edt.cuh"
#include "kernels/geometry/skeleton.cuh"

namespace culoss {

// Scratch planes of the transforms (N·C·P elements each), carved by the plan.
constexpr int kDistancePlanes = 1;  // both transforms, in place (edt.cuh)
// The skeleton's backward keeps x_j and s_{j−1} of this many levels (two planes each).
constexpr int kSkeletonSlots = 3;
// x (two), s, two gradients of x, two for the dilation's passes, then the slots.
constexpr int kSkeletonWorkPlanes = 7;
constexpr int kSkeletonPlanes = kSkeletonWorkPlanes + 2 * kSkeletonSlots;
constexpr int kSkeletonSelections = 2;  // planes of Selection: of an erosion and of a dilation

struct GeometryBuffers {
  double* maps;  // Program::map_width planes
  double* plane[kSkeletonPlanes];
  Selection* sel[kSkeletonSelections];
  double* edt;        // distance transforms: envelope scratch per line (distance_scratch)
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
// element on CUDA, incrementally along rows on the CPU). Each writes element i of its outputs
// only and reads planes it does not write (the CPU vectorises rows on that promise). What varies
// between calls of an op is a template parameter, so that its loop has no branches.
template <bool kKeep>  // with the selections
struct ErodeOp {
  const double* x;
  double* y;
  Selection* sel;
  template <class H>
  CULOSS_HD void operator()(int64_t i, const H& h) const {
    int64_t code;
    y[i] = erode_at(x, h, i, code);
    if (kKeep) sel[i] = static_cast<Selection>(code);
  }
};

// The bits of a dilation pass along `axis` into a selection code: the first pass (axis k − 1)
// writes the code (keep = 0), the others add theirs (keep = 0xFF: the low byte holds them all).
CULOSS_HD Selection add_pass_bits(Selection old, unsigned keep, int64_t code, int axis) {
  return static_cast<Selection>((old & keep) | (static_cast<Selection>(code) << (2 * axis)));
}

// One pass of the separable dilation (axes k − 1 down to 1; the pass along axis 0 is fused
// into the ops below).
template <bool kKeep>  // with the selections
struct DilateAxisOp {
  int axis;
  unsigned keep;  // of the selection code: 0 on the first pass, 0xFF after
  const double* x;
  double* y;
  Selection* sel;
  template <class H>
  CULOSS_HD void operator()(int64_t i, const H& h) const {
    int64_t code;
    y[i] = dilate_axis_at(x, h, axis, i, code);
    if (kKeep) sel[i] = add_pass_bits(sel[i], keep, code, axis);
  }
};

// open(x) at i = the last dilation pass (axis 0) over D, the dilation of E = erode(x) along the
// other axes (D = E when k = 1); then δ = relu(x − open(x)), s = δ at level 0 and
// s + relu(δ − s·δ) after (s_in may be s_out): one pass.
template <bool kFirst>  // level 0: no s_in
struct SkeletonAccumulateOp {
  const double *x, *D;
  const double* s_in;
  double* s_out;
  template <class H>
  CULOSS_HD void operator()(int64_t i, const H& h) const {
    int64_t code;
    const double z = x[i] - dilate_axis_at(D, h, 0, i, code);
    const double delta = z > 0.0 ? z : 0.0;
    if (kFirst) {
      s_out[i] = delta;
      return;
    }
    const double s = s_in[i], u = delta - s * delta;
    s_out[i] = s + (u > 0.0 ? u : 0.0);
  }
};

// Backward of level j at one element (relu' = 0 at 0, as the frameworks take it): open(x_j) =
// the last dilation pass over D as above (its selection bits added), then g_s (dℓ/ds_j in,
// dℓ/ds_{j−1} out) and g_x = dℓ/dx_j through δ_j; −g_x is dℓ/d open(x_j), for the opening's
// backward.
template <bool kFirst>  // level 0 (s_0 = δ_0): no s_prev
struct SkeletonBackOp {
  const double *x, *D;
  Selection* sel;
  unsigned keep;  // of the selection code (add_pass_bits): 0 when k = 1
  const double* s_prev;
  double *g_s, *g_x;
  template <class H>
  CULOSS_HD void operator()(int64_t i, const H& h) const {
    int64_t code;
    const double z = x[i] - dilate_axis_at(D, h, 0, i, code);
    sel[i] = add_pass_bits(sel[i], keep, code, 0);
    const double delta = z > 0.0 ? z : 0.0;
    double g_delta = g_s[i];
    if (!kFirst) {
      const double sp = s_prev[i];
      const double g_u = delta - sp * delta > 0.0 ? g_s[i] : 0.0;
      g_delta = g_u * (1.0 - sp);
      g_s[i] -= g_u * delta;
    }
    g_x[i] = z > 0.0 ? g_delta : 0.0;  // the first part of dℓ/dx_j
  }
};

struct ErodeBackOp {
  const double* g_out;
  const Selection* sel;
  double* g_in;
  template <class H>
  CULOSS_HD void operator()(int64_t i, const H& h) const {
    g_in[i] += erode_back_at(g_out, sel, h, i);
  }
};

// Backward of one dilation pass: g_in = scale · (gather of g_out), added to g_in when
// kAccumulate.
template <bool kAccumulate>
struct DilateAxisBackOp {
  int axis;
  double scale;  // −1 on the first pass: it starts from −dℓ/d open
  const double* g_out;
  const Selection* sel;
  double* g_in;
  template <class H>
  CULOSS_HD void operator()(int64_t i, const H& h) const {
    const double v = scale * dilate_axis_back_at(g_out, sel, h, axis, i);
    g_in[i] = kAccumulate ? g_in[i] + v : v;
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

// The dilation of E along axes k − 1 .. 1 (the passes before the fused one along axis 0), into
// b.plane[5] / b.plane[6]; returns the input of the axis-0 pass (E itself when k = 1). With
// `sel`, the passes write their selection bits.
template <class Exec>
const double* dilate_but_axis0(Exec& ex, const GeometryBuffers& b, const Grid& g, const double* E,
                               Selection* sel) {
  const double* in = E;
  for (int a = g.k - 1; a >= 1; --a) {
    double* out = in == b.plane[5] ? b.plane[6] : b.plane[5];
    if (sel)
      ex.run_grid(g, b.images, DilateAxisOp<true>{a, a == g.k - 1 ? 0u : 0xFFu, in, out, sel});
    else
      ex.run_grid(g, b.images, DilateAxisOp<false>{a, 0u, in, out, nullptr});
    in = out;
  }
  return in;
}

// Runs the skeleton recursion from `x0` through level L: s_L into `s`. The opening of level j is
// dilate(x_{j+1}) (x_{j+1} = erode(x_j) is its erosion), so each level is one erosion and one
// dilation. The x's alternate between b.plane[0] and b.plane[1]. With keep_hi ≥ 1, the levels
// j ∈ [keep_lo, keep_hi] (keep_lo ≥ 1) keep x_j in slot plane x_slot(j − keep_lo) and s_{j−1}
// in s_slot(j − keep_lo) (and L = keep_hi − 1: the backward's rerun).
template <class Exec>
void skeleton_forward(Exec& ex, const GeometryBuffers& b, const Grid& g, const double* x0, int L,
                      double* s, int keep_lo = 0, int keep_hi = 0) {
  auto x_slot = [&](int q) { return b.plane[kSkeletonWorkPlanes + 2 * q]; };
  auto s_slot = [&](int q) { return b.plane[kSkeletonWorkPlanes + 2 * q + 1]; };
  const double* x = x0;
  const double* s_in = nullptr;
  for (int level = 0; level <= L; ++level) {
    const bool keep = keep_hi >= 1 && level + 1 >= keep_lo && level + 1 <= keep_hi;
    double* E = keep ? x_slot(level + 1 - keep_lo) : x == b.plane[0] ? b.plane[1] : b.plane[0];
    double* s_out = keep ? s_slot(level + 1 - keep_lo) : s;
    ex.run_grid(g, b.images, ErodeOp<false>{x, E, nullptr});
    const double* D = dilate_but_axis0(ex, b, g, E, nullptr);
    if (level == 0)
      ex.run_grid(g, b.images, SkeletonAccumulateOp<true>{x, D, nullptr, s_out});
    else
      ex.run_grid(g, b.images, SkeletonAccumulateOp<false>{x, D, s_in, s_out});
    s_in = s_out;
    x = E;
  }
}

// The first level the slots keep for a backward from level j (the last kSkeletonSlots levels).
CULOSS_HD int skeleton_keep_lo(int j) {
  return j - kSkeletonSlots + 1 > 1 ? j - kSkeletonSlots + 1 : 1;
}

// The skeleton's buffers of images [first, first + n): its planes and selections from image
// `first` on (the grid ops of an image read and write that image only). maps and edt are left
// out (nullptr): the skeleton drivers take their maps as arguments.
CULOSS_HD GeometryBuffers skeleton_images(const GeometryBuffers& b, int64_t first, int64_t n) {
  GeometryBuffers v = b;
  const int64_t at = first * b.P;
  for (int i = 0; i < kSkeletonPlanes; ++i) v.plane[i] = b.plane[i] ? b.plane[i] + at : nullptr;
  for (int i = 0; i < kSkeletonSelections; ++i) v.sel[i] = b.sel[i] ? b.sel[i] + at : nullptr;
  v.maps = nullptr;
  v.edt = nullptr;
  v.images = n;
  return v;
}

// Runs f(view, offset) over groups of ex.skeleton_group(images, P) images, each group through
// all its levels before the next (the CPU: a group's planes stay in its cores' caches; CUDA:
// one group of all images). Images do not interact: the grouping changes no value.
template <class Exec, class F>
void for_skeleton_groups(const Exec& ex, const GeometryBuffers& b, F&& f) {
  const int64_t per = ex.skeleton_group(b.images, b.P);
  for (int64_t first = 0; first < b.images; first += per) {
    const int64_t n = per < b.images - first ? per : b.images - first;
    f(skeleton_images(b, first, n), first * b.P);
  }
}

// The last term whose skeleton of p is differentiated (-1: none). Its forward in step 2 fills
// the slots for the first levels of its backward in step 3: no term after it in step 2 touches
// them, step 3 goes back through it first, and the steps between (statistics, finalize,
// upstream) do not read or write the geometry planes.
inline int skeleton_slots_term(const Program& prog) {
  int last = -1;
  for (int t = 0; t < prog.count; ++t)
    visit_term(prog.term[t].kind, [&](auto unit) {
      if (decltype(unit)::kMapGrad && decltype(unit)::kGeometry == GEO_SKELETON) last = t;
    });
  return last;
}

// Step 2 of the geometry (after the seed pass), every map term in program order.
template <class Exec>
void geometry_transform(Exec& ex, const Program& prog, const GeometryBuffers& b) {
  const Grid& g = prog.grid;
  const int64_t count = b.images * b.P, plane = count;
  if (count == 0) return;
  const int slots_term = skeleton_slots_term(prog);
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
      const int L = ts.iterations;
      for_skeleton_groups(ex, b, [&](const GeometryBuffers& v, int64_t at) {
        skeleton_forward(ex, v, g, maps + kSkelT * plane + at, L, maps + kSkelST * plane + at);
        if (t == slots_term)
          skeleton_forward(ex, v, g, maps + kSkelP * plane + at, L, maps + kSkelSP * plane + at,
                           skeleton_keep_lo(L), L);
        else
          skeleton_forward(ex, v, g, maps + kSkelP * plane + at, L, maps + kSkelSP * plane + at);
      });
    }
  }
}

// The backward of one skeleton term over the images of b (a group): dℓ/dS_p in g_s becomes
// dℓ/dp. Level j (from J down to 0) needs x_j, x_{j+1} = erode(x_j) with its selections and
// s_{j−1}: x_j and s_{j−1} from the slots (refilled by a rerun of the forward from p for each
// kSkeletonSlots levels; x_0 = p), then one erosion. Its backward step gives dℓ/dx_j directly
// (through δ_j) and, through the opening dilate(x_{j+1}), a part of dℓ/dx_{j+1}, which is then
// complete and flows to x_j through the erosion. `slots_filled`: step 2 left this term's last
// levels in the slots.
template <class Exec>
void skeleton_backward(Exec& ex, const GeometryBuffers& b, const Grid& g, const double* p,
                       double* g_s, int iterations, bool slots_filled) {
  const int64_t count = b.images * b.P;
  double *g_here = b.plane[3], *g_next = b.plane[4];
  Selection *sel_x = b.sel[0], *sel_d = b.sel[1];
  ex.run(count, FillOp{g_next, 0.0}, kGeometryGrain);  // x_{J+1} enters only the last opening
  int keep_lo = slots_filled ? skeleton_keep_lo(iterations) : iterations + 1;
  for (int j = iterations; j >= 0; --j) {
    const double *x = p, *s_prev = nullptr;
    if (j > 0) {
      if (j < keep_lo) {  // refill the slots: levels keep_lo .. j
        keep_lo = skeleton_keep_lo(j);
        skeleton_forward(ex, b, g, p, j - 1, b.plane[2], keep_lo, j);
      }
      x = b.plane[kSkeletonWorkPlanes + 2 * (j - keep_lo)];
      s_prev = b.plane[kSkeletonWorkPlanes + 2 * (j - keep_lo) + 1];
    }
    double* E = b.plane[0];
    ex.run_grid(g, b.images, ErodeOp<true>{x, E, sel_x});
    const double* D = dilate_but_axis0(ex, b, g, E, sel_d);
    const unsigned keep0 = g.k == 1 ? 0u : 0xFFu;
    if (j == 0)
      ex.run_grid(g, b.images, SkeletonBackOp<true>{x, D, sel_d, keep0, nullptr, g_s, g_here});
    else
      ex.run_grid(g, b.images, SkeletonBackOp<false>{x, D, sel_d, keep0, s_prev, g_s, g_here});
    // dℓ/d open → dℓ/dE through the dilation's passes (axis 0 first), added to g_next.
    const double* in = g_here;
    for (int a = 0; a < g.k; ++a) {
      const bool last = a == g.k - 1;
      double* out = last ? g_next : in == b.plane[5] ? b.plane[6] : b.plane[5];
      const double scale = a == 0 ? -1.0 : 1.0;
      if (last)
        ex.run_grid(g, b.images, DilateAxisBackOp<true>{a, scale, in, sel_d, out});
      else
        ex.run_grid(g, b.images, DilateAxisBackOp<false>{a, scale, in, sel_d, out});
      in = out;
    }
    ex.run_grid(g, b.images, ErodeBackOp{g_next, sel_x, g_here});
    double* tmp = g_here;
    g_here = g_next;
    g_next = tmp;
  }
  ex.run(count, CopyOp{g_next, g_s}, kGeometryGrain);
}

// Step 3 of the geometry (after the upstream pass): dℓ/dS_p → dℓ/dp in the upstream map of
// each skeleton term, a group of images at a time.
template <class Exec>
void geometry_backward(Exec& ex, const Program& prog, const GeometryBuffers& b) {
  const int64_t plane = b.images * b.P;
  if (plane == 0) return;
  const int slots_term = skeleton_slots_term(prog);
  // In reverse program order: the slots term first, before another term's reruns overwrite
  // its slots (each term writes only its own upstream map: the order changes no value).
  for (int t = prog.count - 1; t >= 0; --t) {
    const TermSpec& ts = prog.term[t];
    int op = GEO_NONE;
    visit_term(ts.kind, [&](auto unit) {
      if (decltype(unit)::kMapGrad) op = decltype(unit)::kGeometry;
    });
    if (op != GEO_SKELETON) continue;
    double* maps = b.maps + static_cast<int64_t>(ts.map_offset) * plane;
    for_skeleton_groups(ex, b, [&](const GeometryBuffers& v, int64_t at) {
      skeleton_backward(ex, v, prog.grid, maps + kSkelP * plane + at,
                        maps + kSkelGrad * plane + at, ts.iterations, t == slots_term);
    });
  }
}

}  // namespace culoss
