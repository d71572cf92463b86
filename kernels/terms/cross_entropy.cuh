// Softmax (or probabilities) cross-entropy at class c: ℓ = −v ω t′ log p, t′ = t (1 − ε) + ε / C.
// MEAN divides by Σ m Σ_c ω_c t_c (PyTorch semantics for index targets), so the statistics
// keep Σ m t per class.
#pragma once

#include "kernels/terms/elementwise.cuh"

namespace culoss {

struct CrossEntropyTerm : ElementwiseTerm<CrossEntropyTerm> {
  static constexpr int kCoefs = 1;  // ω_c
  static constexpr int kNone = NONE_PIXELS;
  static constexpr int kCountSlots = 1;  // Σ m t

  static bool needs_counts(const TermSpec& t, bool, bool) { return t.reduction == RED_MEAN; }

  template <class R>
  CULOSS_HD static TermOut<R> element(const TermSpec& s, const TermPixel<R>& px, const double* coef,
                                      const double*) {
    const ClassProb<R> cp = class_prob(s.activation, px.soft, px.x);
    const R eps = static_cast<R>(s.label_smoothing);
    const R ts = px.t * (R(1) - eps) + eps / static_cast<R>(px.C);
    const R k = px.v * narrow_coef<R>(coef[0]) * ts;
    TermOut<R> o;
    o.loss = k == R(0) ? R(0) : -k * cp.logp;
    if (s.activation == ACT_SOFTMAX)
      o.d = -k;
    else
      o.d = cp.live && k != R(0) ? -k / cp.p : R(0);
    return o;
  }

  // Counts: Σ m t only (distributed, the value follows in the next slot).
  template <class R>
  CULOSS_HD static void counts(const TermPixel<R>& px, R* slots) {
    slots[0] = px.m * px.t;
  }
  CULOSS_HD static double divisor_part(int64_t, double wc, double tsum, double) {
    return wc * tsum;
  }
};

}  // namespace culoss
