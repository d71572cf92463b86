// Softmax (or probabilities) focal loss at class c: ℓ = −v ω t (1 − p)^γ log p. With
// q = log p / (1 − p) (→ −1 as p → 1): h = −v ω t (1 − p)^γ (1 − γ p q), finite for every γ ≥ 0.
// MEAN as the cross-entropy's (γ = 0 is the cross-entropy exactly).
#pragma once

#include "kernels/terms/cross_entropy.cuh"

namespace culoss {

struct FocalSoftmaxTerm : ElementwiseTerm<FocalSoftmaxTerm> {
  static constexpr int kCoefs = 1;  // ω_c
  static constexpr int kNone = NONE_PIXELS;
  static constexpr int kCountSlots = CrossEntropyTerm::kCountSlots;

  static bool needs_counts(const TermSpec& t, bool distributed, bool index_target) {
    return CrossEntropyTerm::needs_counts(t, distributed, index_target);
  }

  template <class R>
  CULOSS_HD static TermOut<R> element(const TermSpec& s, const TermPixel<R>& px, const double* coef,
                                      const double*) {
    TermOut<R> o{R(0), R(0)};
    const R k = px.v * narrow_coef<R>(coef[0]) * px.t;
    if (k == R(0)) return o;
    const ClassProb<R> cp = class_prob(s.activation, px.soft, px.x);
    const R gamma = static_cast<R>(s.gamma);
    const R u = R(1) - cp.p;
    const R ug = pow_r(u, gamma);
    const R q = u > R(0) ? cp.logp / u : R(-1);
    o.loss = -k * ug * cp.logp;
    if (s.activation == ACT_SOFTMAX)
      o.d = -k * ug * (R(1) - gamma * cp.p * q);
    else
      o.d = cp.live ? -k * ug * (R(1) / cp.p - gamma * q) : R(0);
    return o;
  }

  template <class R>
  CULOSS_HD static void counts(const TermPixel<R>& px, R* slots) {
    CrossEntropyTerm::counts(px, slots);
  }
  CULOSS_HD static double divisor_part(int64_t c, double wc, double tsum, double msum) {
    return CrossEntropyTerm::divisor_part(c, wc, tsum, msum);
  }
};

}  // namespace culoss
