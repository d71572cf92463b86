// Top-k cross-entropy (nnU-Net's TopKLoss): the cross-entropy unit's loss, counts and derivative
// at the pixels a batch-wide selection kept (kernels/common/topk.cuh; the backends select before
// the passes), zero elsewhere. Restricting CE's counts to the selected pixels makes MEAN divide
// by Σ m Σ_c ω_c t_c over them: with every pixel selected this is CROSS_ENTROPY, bit for bit.
#pragma once

#include "kernels/terms/cross_entropy.cuh"

namespace culoss {

struct TopKCeTerm : ElementwiseTerm<TopKCeTerm> {
  using CE = CrossEntropyTerm;
  static constexpr int kCoefs = CE::kCoefs;
  static constexpr int kNone = CE::kNone;
  static constexpr int kCountSlots = CE::kCountSlots;

  // MEAN only (the registry refuses the other reductions): the divisor always needs counts.
  static bool needs_counts(const TermSpec&, bool, bool) { return true; }

  // `selected` is NULL only while the selection itself measures the losses: every pixel counts.
  CULOSS_HD static bool selected(const TermSpec& s, int64_t pix) {
    return s.selected == nullptr || s.selected[pix] != 0;
  }

  template <class R>
  CULOSS_HD static TermOut<R> element(const TermSpec& s, const TermPixel<R>& px, const double* coef,
                                      const double* argmax_coef) {
    if (!selected(s, px.pix)) return TermOut<R>{R(0), R(0)};
    return CE::element(s, px, coef, argmax_coef);
  }

  template <class R>
  CULOSS_HD static void counts(const TermPixel<R>& px, R* slots) {
    CE::counts(px, slots);
  }
  // The counts of one pixel as stats() sees it: CE's, at selected pixels only.
  template <class R>
  CULOSS_HD static void stats(const Program& prog, const TermSpec& ts, const TermPixel<R>& px,
                              R* slots) {
    if (selected(ts, px.pix))
      ElementwiseTerm<TopKCeTerm>::stats(prog, ts, px, slots);
    else
      for (int k = 0; k < ts.stat_count; ++k) slots[k] = R(0);
  }
  CULOSS_HD static double divisor_part(int64_t c, double wc, double tsum, double msum) {
    return CE::divisor_part(c, wc, tsum, msum);
  }
};

}  // namespace culoss
