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
// (element-wise terms get stats and finalize from ElementwiseTerm, with hooks). Code that knows
// the term at compile time calls Term:: directly, e.g. a pass specialised for one kind.
#pragma once

#include "kernels/terms/bce.cuh"
#include "kernels/terms/cross_entropy.cuh"
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
  }
}

}  // namespace culoss
