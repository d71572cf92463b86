// A loss call as a program of terms, and the element math of every term.
//
// Every kind is one term (COMBO is expanded into a binary cross-entropy term, a Dice term and a
// constant; a CULOSS_SUM is the concatenation of its terms' programs). A term owns:
//   - statistics slots in the per-(image, class) statistics row (step 2 of DESIGN.md §1),
//   - coefficient slots in the per-(image, class) coefficient row, filled by finalize (step 3),
//   - element math: its loss at one element and its derivative (step 4).
// Derivatives come in two forms. A softmax-style term returns h_c = p_c · dℓ/dp_c (finite even
// where p_c underflows); the pixel pass turns the sum H of all such terms into
// dℓ/dx_k = H_k − p_k Σ_c H_c. Every other term returns dℓ/dx (or dℓ/dp for probabilities)
// directly.
#pragma once

#include <cstdint>

#include "kernels/common/layout.cuh"  // ACT_* activations
#include "kernels/common/math.cuh"
#include "kernels/common/region_math.cuh"

namespace culoss {

constexpr int kMaxTerms = 8;

// Term kinds inside a program (COMBO and SUM never appear: they are expanded).
enum TermKind : int {
  TK_REGION = 0,  // Dice, Jaccard, Tversky, focal Tversky, generalized Dice (RegionParams)
  TK_BCE = 1,     // binary cross-entropy per element (also COMBO's weighted CE)
  TK_CE = 2,      // softmax cross-entropy
  TK_FOCAL_BINARY = 3,
  TK_FOCAL_SOFTMAX = 4,
  TK_MARGINAL = 5,  // cross-entropy tolerant of missing annotations
};

struct TermSpec {
  int kind;
  int activation;  // ACT_*
  int reduction;   // RED_*
  double weight;   // weight in the sum (1 for a single loss)
  int stat_offset, stat_count;
  int coef_offset, coef_count;
  bool needs_target_stats;  // element-wise term whose finalize needs counts from step 2
  // element-wise parameters
  double alpha, gamma, label_smoothing;
  bool batch_frequency;         // BCE class balance from the batch
  double pos_scale, neg_scale;  // BCE: factors of ω⁺ and ω⁻ (COMBO: α and 1 − α)
  int64_t static_count;         // MEAN divisor when no statistics are needed (N·C·P elements)
  int64_t class_weight_offset;  // into the weight table; -1: all 1
  int64_t pos_weight_offset;    // BCE positive weight; -1: all 1
  RegionParams region;          // TK_REGION only
  int value_offset;             // distributed: first slot of the value sums in the stats row
  int64_t export_offset;        // distributed: region (Σ wgt·ℓ, Σ wgt) or marginal background
};

// Where a NONE reduction writes: per (image, class) group (region), per element, per pixel.
enum NoneMode : int { NONE_OFF = 0, NONE_GROUPS = 1, NONE_ELEMENTS = 2, NONE_PIXELS = 3 };

struct Program {
  int count;
  TermSpec term[kMaxTerms];
  int stat_width, coef_width;  // slots per (image, class)
  double constant;             // added to the loss value (COMBO's −(1 − ce_ratio))
  int none_mode;
  bool stats_need_prediction;  // some term's statistics read the input
  bool has_stats;              // step 2 runs
  bool any_softmax;            // some term uses the softmax of the input
  bool any_marginal;           // some term needs the pixel's argmax
  bool any_elementwise;        // some term's value is summed in the element pass
  // Distributed (culoss_compute_stats / _from_stats): element-wise values are statistics too,
  // so that they can be summed across ranks; the exported vector is C x stat_width class
  // totals, then each term's export slots, then the pixel count.
  bool value_in_stats;
  int64_t export_count, export_pixels;
};

CULOSS_HD bool is_softmax_style(const TermSpec& t) { return t.activation == ACT_SOFTMAX; }

// ---- probabilities of a binary (per-element) term --------------------------------------------

constexpr double kProbClamp = 1e-7;  // ACTIVATION_NONE: p is clamped to [1e-7, 1 − 1e-7]
constexpr double kLogProbClamp = -16.11809565095832;         // log(1e-7)
constexpr double kLog1mProbClamp = -1.0000000500000033e-07;  // log(1 − 1e-7)

template <class R>
struct BinaryProb {
  R p, q;        // p and 1 − p, each computed without cancellation
  R logp, logq;  // log p, log(1 − p)
  bool live;     // false where a probability input was clamped: zero gradient there
};

template <class R>
CULOSS_HD BinaryProb<R> binary_prob(int activation, R x) {
  BinaryProb<R> b;
  if (activation == ACT_SIGMOID) {
    b.p = sigmoid(x);
    b.q = sigmoid(-x);
    b.logp = log_sigmoid(x);
    b.logq = log_sigmoid(-x);
    b.live = true;
    return b;
  }
  // The bounds are compared and their logs taken in double: in float, 1 − 1e-7 would round to
  // 1 − 1.19e-7 and the clamped loss would differ between backends.
  const double xd = static_cast<double>(x);
  b.live = xd >= kProbClamp && xd <= 1.0 - kProbClamp;
  if (xd < kProbClamp) {
    b.p = R(kProbClamp);
    b.q = R(1.0 - kProbClamp);
    b.logp = R(kLogProbClamp);
    b.logq = R(kLog1mProbClamp);
  } else if (xd > 1.0 - kProbClamp) {
    b.p = R(1.0 - kProbClamp);
    b.q = R(kProbClamp);
    b.logp = R(kLog1mProbClamp);
    b.logq = R(kLogProbClamp);
  } else {
    b.p = x;
    b.q = R(1) - x;
    b.logp = log_r(x);
    b.logq = log1p_r(-x);
  }
  return b;
}

// Probability of a softmax-style term: the pixel's softmax, or a clamped probability input.
template <class R>
struct ClassProb {
  R p, logp;
  bool live;
};

// ---- element math of each term kind ----------------------------------------------------------

template <class R>
struct TermOut {
  R loss;  // ℓ at this element (before the term's scale)
  R d;     // h_c for softmax-style terms, else dℓ/dx (dℓ/dp for probability inputs)
};

// BCE: ℓ = −v [ω⁺ t′ log p + ω⁻ (1 − t′) log(1 − p)], t′ = t (1 − ε) + ε / 2.
template <class R>
CULOSS_HD TermOut<R> bce_element(const TermSpec& s, const BinaryProb<R>& b, R t, R v, R w_pos,
                                 R w_neg) {
  const R eps = static_cast<R>(s.label_smoothing);
  const R ts = t * (R(1) - eps) + eps / R(2);
  TermOut<R> o;
  o.loss = -v * (w_pos * ts * b.logp + w_neg * (R(1) - ts) * b.logq);
  if (s.activation == ACT_SIGMOID) {
    o.d = v * (w_neg * (R(1) - ts) * b.p - w_pos * ts * b.q);
  } else {
    o.d = b.live ? -v * (w_pos * ts / b.p - w_neg * (R(1) - ts) / b.q) : R(0);
  }
  return o;
}

// Binary focal: ℓ = ω α_t · ce · u^γ with u = 1 − p_t. The derivative is written with
// u^γ · p(1 − p)/u so it stays finite for every γ ≥ 0, also where u → 0.
template <class R>
CULOSS_HD TermOut<R> focal_binary_element(const TermSpec& s, const BinaryProb<R>& b, R t, R v,
                                          R w_class) {
  const R gamma = static_cast<R>(s.gamma), alpha = static_cast<R>(s.alpha);
  const R ce = -(t * b.logp + (R(1) - t) * b.logq);
  const R u = b.p * (R(1) - t) + b.q * t;  // 1 − p_t
  const R alpha_t = s.alpha < 0.0 ? R(1) : alpha * t + (R(1) - alpha) * (R(1) - t);
  const R w = v * w_class * alpha_t;
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

// Softmax cross-entropy at class c: ℓ = −v ω t′ log p, t′ = t (1 − ε) + ε / C.
template <class R>
CULOSS_HD TermOut<R> ce_element(const TermSpec& s, const ClassProb<R>& cp, R t, R v, R w_class,
                                int64_t C) {
  const R eps = static_cast<R>(s.label_smoothing);
  const R ts = t * (R(1) - eps) + eps / static_cast<R>(C);
  const R k = v * w_class * ts;
  TermOut<R> o;
  o.loss = k == R(0) ? R(0) : -k * cp.logp;
  if (s.activation == ACT_SOFTMAX)
    o.d = -k;
  else
    o.d = cp.live && k != R(0) ? -k / cp.p : R(0);
  return o;
}

// Softmax focal at class c: ℓ = −v ω t (1 − p)^γ log p. With q = log p / (1 − p) (→ −1 as
// p → 1): h = −v ω t (1 − p)^γ (1 − γ p q), finite for every γ ≥ 0.
template <class R>
CULOSS_HD TermOut<R> focal_softmax_element(const TermSpec& s, const ClassProb<R>& cp, R t, R v,
                                           R w_class) {
  TermOut<R> o{R(0), R(0)};
  const R k = v * w_class * t;
  if (k == R(0)) return o;
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

// Marginal CE at class c: ℓ = −v t̃ log p with t̃_0 = b t_0 (b = 0 when the pixel's argmax is a
// foreground class the image's annotation lacks), t̃_c = t_c otherwise.
template <class R>
CULOSS_HD TermOut<R> marginal_element(const TermSpec& s, const ClassProb<R>& cp, R t_tilde, R v) {
  TermOut<R> o{R(0), R(0)};
  const R k = v * t_tilde;
  if (k == R(0)) return o;
  o.loss = -k * cp.logp;
  if (s.activation == ACT_SOFTMAX)
    o.d = -k;
  else
    o.d = cp.live ? -k / cp.p : R(0);
  return o;
}

// Region term at class c: dℓ/dp = v (a t + b dSP/dp), through the term's activation.
template <class R>
CULOSS_HD R region_element_d(const TermSpec& s, R p, R t, R v, R a, R b) {
  const R dl_dp = region_dloss_dp(a, b, s.region.squared, p, t, v);
  if (s.activation == ACT_SOFTMAX) return p * dl_dp;  // h_c
  if (s.activation == ACT_SIGMOID) return dl_dp * p * (R(1) - p);
  return dl_dp;
}

}  // namespace culoss
