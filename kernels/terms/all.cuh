// The term units and the one dispatch from a term's kind (TermKind, kernels/common/terms.cuh) to
// its unit. Every unit has the same static interface:
//   kCoefs                 coefficient slots per (image, class)
//   kScaledCoefs           its coefficients carry grad_scale (region terms) or not
//   kElementValue          its value is summed in the element pass (else finalize adds it)
//   kNone                  what REDUCTION_NONE writes (NoneMode)
//   kNeedsArgmax           the element pass finds each pixel's argmax class for it
//   kCountSlots, kValueSlots, kExportSlots, needs_counts(t, distributed, index_target)
//                          statistics slots per (image, class): counts (or sums; kCountSlots is
//                          the most, count_slots(t) a planned term's own), and when distributed
//                          the value's sums and the exported extra slots
//   stats(prog, ts, px, slots)          statistics of class c at a counted pixel
//   finalize(ts, i, step)               step 3: statistics → value, coefficients, scale
//   element(ts, px, coef, argmax_coef)  step 4: loss and derivative at class c
// and the geometry hooks (defaults in NoMaps, kernels/common/terms.cuh):
//   kMaps, kGeometry       per-element maps of every (image, class) and the algorithm that
//                          transforms them (GeometryOp; kernels/geometry/geometry.cuh)
//   kMinAxes               fewest spatial axes the term accepts (0: any shape)
//   kMapGrad, kUpstreamMap its gradient flows back through the maps, seeded in this map
//   kRegionParams          planning fills TermSpec::region (groups, smoothing, class weights)
//   kIncludeBackground     it takes INCLUDE_BACKGROUND (TermSpec::include_background)
//   seed(ts, px, out)      the term's map seeds at one element (before step 2)
//   distance_value(ts, m, d, d̄)   GEO_DISTANCE: the value of mask m from its two distances
//   upstream(ts, px, coef) kMapGrad: dℓ/d(map) at one element (after step 3)
// (element-wise terms get stats and finalize from ElementwiseTerm, with hooks). Code that knows
// the term at compile time calls Term:: directly, e.g. a pass specialised for one kind.
#pragma once

#include "kernels/terms/bce.cuh"
#include "kernels/terms/cldice.cuh"
#include "kernels/terms/cross_entropy.cuh"
#include "kernels/terms/distance.cuh"
#include "kernels/terms/focal_binary.cuh"
#include "kernels/terms/focal_softmax.cuh"
#include "kernels/terms/marginal_ce.cuh"
#include "kernels/terms/region.cuh"
#include "kernels/terms/topk_ce.cuh"

namespace culoss {

#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
// Calls f(Unit{}) with the unit of term kind `kind`.
template <class F>
CULOSS_HD void visit_term(int kind, F&& f) {
  switch (kind) {
    case TK_REGION:
      return f(RegionTerm{});
    case TK_BCE:
      return f(BceTerm{});
    case TK_CE:
      return f(CrossEntropyTerm{});
    case TK_FOCAL_BINARY:
      return f(FocalBinaryTerm{});
    case TK_FOCAL_SOFTMAX:
      return f(FocalSoftmaxTerm{});
    case TK_MARGINAL:
      return f(MarginalCeTerm{});
    case TK_TOPK_CE:
      return f(TopKCeTerm{});
    case TK_HAUSDORFF_DT:
      return f(HausdorffDtTerm{});
    case TK_BOUNDARY:
      return f(BoundaryTerm{});
    case TK_CLDICE:
      return f(ClDiceTerm{});
  }
}

}  // namespace culoss
