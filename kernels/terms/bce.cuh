// Binary cross-entropy per element (CULOSS_BCE, and COMBO's α-weighted cross-entropy):
//   ℓ = −v [ω⁺ t′ log p + ω⁻ (1 − t′) log(1 − p)], t′ = t (1 − ε) + ε / 2.
// ω⁺ = POS_WEIGHT · class weight (COMBO: α), ω⁻ = class weight (COMBO: 1 − α); with
// BATCH_FREQUENCY, per class over the batch's counted elements ω⁺ = mean(1 − t), ω⁻ = mean(t).
// Statistics: Σ m t, Σ m and, distributed, the ω⁺ and ω⁻ parts of the value apart (the weights
// are applied after the reduction).
#pragma once

#include "kernels/terms/elementwise.cuh"

namespace culoss {

struct BceTerm : ElementwiseTerm<BceTerm> {
  static constexpr int kCoefs = 2;       // ω⁺_c, ω⁻_c
  static constexpr int kValueSlots = 2;  // the ω⁺ and ω⁻ parts

  // t′ and the two parts of the loss: −t′ log p and −(1 − t′) log(1 − p).
  template <class R>
  struct Parts {
    R ts, pos, neg;
  };
  template <class R>
  CULOSS_HD static Parts<R> parts(const TermSpec& s, const BinaryProb<R>& b, R t) {
    const R eps = static_cast<R>(s.label_smoothing);
    const R ts = t * (R(1) - eps) + eps / R(2);
    return Parts<R>{ts, -ts * b.logp, -(R(1) - ts) * b.logq};
  }

  template <class R>
  CULOSS_HD static TermOut<R> element(const TermSpec& s, const TermPixel<R>& px, const double* coef,
                                      const double*) {
    const BinaryProb<R> b = binary_prob(s.activation, px.x);
    const Parts<R> k = parts(s, b, px.t);
    const R w_pos = narrow_coef<R>(coef[0]), w_neg = narrow_coef<R>(coef[1]), v = px.v;
    TermOut<R> o;
    o.loss = v * (w_pos * k.pos + w_neg * k.neg);
    if (s.activation == ACT_SIGMOID) {
      o.d = v * (w_neg * (R(1) - k.ts) * b.p - w_pos * k.ts * b.q);
    } else {
      o.d = b.live ? -v * (w_pos * k.ts / b.p - w_neg * (R(1) - k.ts) / b.q) : R(0);
    }
    return o;
  }

  template <class R>
  CULOSS_HD static void value_stats(const TermSpec& ts, const TermPixel<R>& px, R* slots) {
    const Parts<R> k = parts(ts, binary_prob(ts.activation, px.x), px.t);
    slots[0] = px.v * k.pos;
    slots[1] = px.v * k.neg;
  }

  CULOSS_HD static void class_weights(const TermSpec& ts, const double* pw, int64_t c, double wc,
                                      double tsum, double msum, double& pos, double& neg) {
    pos = (pw ? pw[c] : 1.0) * wc * ts.pos_scale;
    neg = wc * ts.neg_scale;
    if (ts.batch_frequency) {  // ω⁺ = mean(1 − t), ω⁻ = mean(t) over the counted elements
      pos *= msum > 0.0 ? 1.0 - tsum / msum : 0.0;
      neg *= msum > 0.0 ? tsum / msum : 0.0;
    }
  }

  template <class Sum>
  CULOSS_HD static double value_part(int64_t, double pos, double neg, double, Sum&& sum) {
    return pos * sum(0) + neg * sum(1);
  }

  template <class Step>
  CULOSS_HD static void coefs(const TermSpec&, const Step& f, int64_t j, double* coef) {
    coef[0] = f.b.class_coef_a[j % f.C];
    coef[1] = f.b.class_coef_b[j % f.C];
  }
};

}  // namespace culoss
