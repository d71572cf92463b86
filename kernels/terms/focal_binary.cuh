// Binary (sigmoid, or probabilities) focal loss per element: ℓ = ω α_t · ce · u^γ with
// ce the binary cross-entropy, u = 1 − p_t, α_t = α t + (1 − α)(1 − t) (α < 0: 1).
// The derivative is written with u^γ · p(1 − p)/u so it stays finite for every γ ≥ 0, also
// where u → 0. MEAN over the counted elements.
#pragma once

#include "kernels/terms/elementwise.cuh"

namespace culoss {

struct FocalBinaryTerm : ElementwiseTerm<FocalBinaryTerm> {
  static constexpr int kCoefs = 1;  // ω_c

  template <class R>
  CULOSS_HD static TermOut<R> element(const TermSpec& s, const TermPixel<R>& px, const double* coef,
                                      const double*) {
    const BinaryProb<R> b = binary_prob(s.activation, px.x);
    const R t = px.t;
    const R gamma = static_cast<R>(s.gamma), alpha = static_cast<R>(s.alpha);
    const R ce = -(t * b.logp + (R(1) - t) * b.logq);
    const R u = b.p * (R(1) - t) + b.q * t;  // 1 − p_t
    const R alpha_t = s.alpha < 0.0 ? R(1) : alpha * t + (R(1) - alpha) * (R(1) - t);
    const R w = px.v * narrow_coef<R>(coef[0]) * alpha_t;
    const R ug = pow_r(u, gamma);
    TermOut<R> o;
    o.loss = w * ce * ug;
    if (s.activation == ACT_SIGMOID) {
      const R r = u > R(0) ? b.p * b.q / u : (t >= R(0.5) ? b.p : b.q);  // p(1 − p) / u
      o.d = w * ug * ((b.p - t) + gamma * ce * (R(1) - R(2) * t) * r);
    } else if (!b.live) {
      o.d = R(0);
    } else {
      const R dce_dp = (b.p - t) / (b.p * b.q);
      const R second = u > R(0) ? gamma * ce * (R(1) - R(2) * t) * ug / u : R(0);
      o.d = w * (dce_dp * ug + second);
    }
    return o;
  }
};

}  // namespace culoss
