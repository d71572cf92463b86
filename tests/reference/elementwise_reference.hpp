// An independent, naive reference for the element-wise losses of culoss (BCE, CROSS_ENTROPY,
// FOCAL with SIGMOID/NONE/SOFTMAX, COMBO, MARGINAL_CE) and for CULOSS_SUM (a weighted sum of
// references), written straight from docs/reference.md and docs/SEMANTICS.md "Element-wise losses".
//
// It shares nothing with the library (not even culoss.h): plain loops in long double over a
// row-major tensor. COMBO's Dice part is the region reference (region_reference.hpp), which is
// equally independent.
//
// How the gradient is obtained (no hand-derived derivative formulas, so that a wrong derivation in
// the library cannot be mirrored here):
//   * everything that the contract declares "a constant for the gradient" is computed first from
//     the targets and the input values: the MEAN divisor, BATCH_FREQUENCY class weights, the
//     annotated classes a_{n,c} and the background factor b_i of MARGINAL_CE;
//   * the loss of one pixel is then a function of that pixel's C inputs only. It is written once,
//     on a forward-mode dual number; seeding one input at a time gives ∂(pixel loss)/∂x exactly
//     (C evaluations per pixel, C² work: fine for the small tensors of the tests);
//   * the activations are written as in the contract: log-sigmoid (stable) and log-softmax from
//     logits; ACTIVATION_NONE clamps probabilities to [1e-7, 1 − 1e-7], where a clamped input is
//     a constant (zero gradient outside the range).
//   * `reference_objective` evaluates the reduced objective directly from a long double input,
//     so tests can check the dual-number gradient against central differences.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "reference/region_reference.hpp"

namespace elem_ref {

// Same numbers as the culoss enums, restated so the reference needs no library header.
enum Kind { BCE = 6, CROSS_ENTROPY = 7, FOCAL = 8, COMBO = 9, MARGINAL_CE = 10 };
enum Activation { ACT_NONE = 0, ACT_SIGMOID = 1, ACT_SOFTMAX = 2 };
enum Reduction { RED_MEAN = 0, RED_SUM = 1, RED_NONE = 2 };

struct Spec {
  int kind = BCE;
  std::vector<int64_t> shape;  // input shape, row-major
  int class_axis = 1;          // negative counts from the end
  std::vector<double> input;   // logits or probabilities
  bool index_target = false;
  std::vector<double> dense_target;  // input's shape (dense)
  std::vector<int64_t> labels;       // input's shape without the class axis (index)
  std::vector<double> pixel_weight;  // empty: all 1; else input's shape without the class axis
  int activation = ACT_SIGMOID;
  int reduction = RED_MEAN;
  int64_t ignore_index = -100;
  std::vector<double> class_weights;  // BCE, CROSS_ENTROPY, FOCAL; COMBO: its Dice part only
  std::vector<double> pos_weight;     // BCE
  bool batch_frequency = false;       // BCE: CLASS_BALANCE = BATCH_FREQUENCY
  double label_smoothing = 0.0;       // BCE, CROSS_ENTROPY
  double alpha = 0.25;                // FOCAL (binary; < 0 disables), COMBO
  double gamma = 2.0;                 // FOCAL
  double ce_ratio = 0.5;              // COMBO
  // COMBO's Dice options (as the region losses).
  double smooth_nr = 1e-5, smooth_dr = 1e-5;
  bool squared = false, batch = false, include_background = true, skip_empty = false;
  int average = 0;  // MACRO
  double grad_scale = 1.0;
};

struct Result {
  std::vector<double> values;        // MEAN/SUM: one value; NONE: the written outputs
  std::vector<int64_t> value_shape;  // {} for one value
  std::vector<double> grad;          // grad_scale · d(objective)/d(input), input's shape
  double divisor = 0;                // the MEAN divisor used (for tests that check it)
};

namespace detail {

using LD = long double;

struct D {  // forward-mode dual number
  LD v = 0, d = 0;
  D() = default;
  D(LD value, LD tangent = 0) : v(value), d(tangent) {}
};
inline D operator+(D a, D b) { return {a.v + b.v, a.d + b.d}; }
inline D operator-(D a, D b) { return {a.v - b.v, a.d - b.d}; }
inline D operator-(D a) { return {-a.v, -a.d}; }
inline D operator*(D a, D b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }
inline D operator/(D a, D b) { return {a.v / b.v, (a.d * b.v - a.v * b.d) / (b.v * b.v)}; }
inline D& operator+=(D& a, D b) { return a = a + b; }
inline D dexp(D a) {
  const LD e = std::exp(a.v);
  return {e, e * a.d};
}
inline D dlog(D a) { return {std::log(a.v), a.d / a.v}; }
inline D dlog1p(D a) { return {std::log1p(a.v), a.d / (1 + a.v)}; }
inline D dpow(D b, LD g) {  // b^g for b >= 0, g >= 0; b^0 = 1
  if (g == 0) return D(1);
  if (b.v <= 0) return D(0);  // only reached in hand-made edge cases; the tests avoid it
  return {std::pow(b.v, g), g * std::pow(b.v, g - 1) * b.d};
}
// log σ(x) and σ(x) without overflow for any finite x.
inline D log_sigmoid(D x) { return x.v < 0 ? x - dlog1p(dexp(x)) : -dlog1p(dexp(-x)); }
inline D sigmoid(D x) { return dexp(log_sigmoid(x)); }

// Clamp of a probability input: outside [1e-7, 1 − 1e-7] (the double constants) a constant.
inline D clamp_prob(D x) {
  const LD lo = static_cast<LD>(1e-7), hi = static_cast<LD>(1.0 - 1e-7);
  if (x.v < lo) return D(lo);
  if (x.v > hi) return D(hi);
  return x;
}

struct Layout {
  int64_t ndim = 0, axis = 0, N = 0, C = 0, pre = 1, inner = 1, outer = 0, P = 0;
  int64_t elem(int64_t o, int64_t c, int64_t in) const { return (o * C + c) * inner + in; }
  int64_t pixel(int64_t o, int64_t in) const { return o * inner + in; }
};

inline Layout layout_of(const Spec& s) {
  Layout L;
  L.ndim = static_cast<int64_t>(s.shape.size());
  if (L.ndim < 2) throw std::invalid_argument("elem_ref: input needs >= 2 dims");
  L.axis = s.class_axis < 0 ? s.class_axis + L.ndim : s.class_axis;
  if (L.axis < 1 || L.axis >= L.ndim) throw std::invalid_argument("elem_ref: bad class axis");
  L.N = s.shape[0];
  L.C = s.shape[static_cast<size_t>(L.axis)];
  for (int64_t d = 1; d < L.axis; ++d) L.pre *= s.shape[static_cast<size_t>(d)];
  for (int64_t d = L.axis + 1; d < L.ndim; ++d) L.inner *= s.shape[static_cast<size_t>(d)];
  L.outer = L.N * L.pre;
  L.P = L.pre * L.inner;
  return L;
}

inline bool is_binary(const Spec& s) {
  return s.kind == BCE || s.kind == COMBO || (s.kind == FOCAL && s.activation != ACT_SOFTMAX);
}

// Everything that is constant for the gradient.
struct Ctx {
  Layout L;
  std::vector<LD> t;             // dense target, input's shape (0 on ignored pixels)
  std::vector<LD> m, v;          // per pixel: counted, m · pixel_weight
  std::vector<LD> w_pos, w_neg;  // BCE per class (COMBO: α, 1 − α)
  std::vector<LD> omega;         // class weights (1 where they do not apply)
  std::vector<LD> b;             // MARGINAL_CE background factor per pixel
  LD divisor = 0;                // MEAN divisor
};

inline Ctx context(const Spec& s, const std::vector<LD>& x) {
  Ctx k;
  const Layout L = layout_of(s);
  k.L = L;
  const size_t ne = static_cast<size_t>(L.outer * L.C * L.inner),
               np = static_cast<size_t>(L.outer * L.inner);
  if (x.size() != ne) throw std::invalid_argument("elem_ref: input size");
  if (s.index_target ? s.labels.size() != np : s.dense_target.size() != ne)
    throw std::invalid_argument("elem_ref: target size");
  if (!s.pixel_weight.empty() && s.pixel_weight.size() != np)
    throw std::invalid_argument("elem_ref: pixel_weight size");
  if (s.activation == ACT_SOFTMAX && L.C == 1)  // constant: the library refuses it
    throw std::invalid_argument("elem_ref: SOFTMAX over one class");
  const bool binary = is_binary(s);
  if (s.index_target && binary && L.C != 1)
    throw std::invalid_argument("elem_ref: binary loss with index targets needs C = 1");

  // Targets and masks.
  k.t.assign(ne, 0);
  k.m.assign(np, 1);
  k.v.assign(np, 1);
  for (int64_t o = 0; o < L.outer; ++o)
    for (int64_t in = 0; in < L.inner; ++in) {
      const size_t px = static_cast<size_t>(L.pixel(o, in));
      if (s.index_target) {
        const int64_t lab = s.labels[px];
        // Binary kinds, and any kind with one class, read the labels as a 0/1 mask.
        const bool mask = binary || L.C == 1;
        const bool valid = lab != s.ignore_index && lab >= 0 && lab < (mask ? 2 : L.C);
        if (!valid) {
          k.m[px] = 0;
        } else if (mask) {
          k.t[static_cast<size_t>(L.elem(o, 0, in))] = static_cast<LD>(lab);
        } else {
          k.t[static_cast<size_t>(L.elem(o, lab, in))] = 1;
        }
      } else {
        for (int64_t c = 0; c < L.C; ++c) {
          const size_t e = static_cast<size_t>(L.elem(o, c, in));
          k.t[e] = s.dense_target[e];
        }
      }
      const LD pw = s.pixel_weight.empty() ? 1.0L : static_cast<LD>(s.pixel_weight[px]);
      k.v[px] = k.m[px] * pw;
    }

  // Per-class weights.
  const bool has_cw = !s.class_weights.empty() && s.kind != COMBO && s.kind != MARGINAL_CE;
  if (has_cw && static_cast<int64_t>(s.class_weights.size()) != L.C)
    throw std::invalid_argument("elem_ref: class_weights size");
  k.omega.assign(static_cast<size_t>(L.C), 1);
  if (has_cw)
    for (int64_t c = 0; c < L.C; ++c)
      k.omega[static_cast<size_t>(c)] = s.class_weights[static_cast<size_t>(c)];

  // Σ m t and Σ m per class over the batch (raw t).
  std::vector<LD> tsum(static_cast<size_t>(L.C), 0), msum(static_cast<size_t>(L.C), 0);
  for (int64_t o = 0; o < L.outer; ++o)
    for (int64_t in = 0; in < L.inner; ++in)
      for (int64_t c = 0; c < L.C; ++c) {
        const LD mm = k.m[static_cast<size_t>(L.pixel(o, in))];
        tsum[static_cast<size_t>(c)] += mm * k.t[static_cast<size_t>(L.elem(o, c, in))];
        msum[static_cast<size_t>(c)] += mm;
      }

  k.w_pos.assign(static_cast<size_t>(L.C), 1);
  k.w_neg.assign(static_cast<size_t>(L.C), 1);
  if (s.kind == BCE) {
    if (!s.pos_weight.empty() && static_cast<int64_t>(s.pos_weight.size()) != L.C)
      throw std::invalid_argument("elem_ref: pos_weight size");
    for (int64_t c = 0; c < L.C; ++c) {
      const size_t cc = static_cast<size_t>(c);
      LD wp = k.omega[cc] * (s.pos_weight.empty() ? 1.0L : static_cast<LD>(s.pos_weight[cc]));
      LD wn = k.omega[cc];
      if (s.batch_frequency) {  // ω⁺ ·= mean(1 − t), ω⁻ ·= mean(t) over the counted elements
        const LD mean_t = msum[cc] > 0 ? tsum[cc] / msum[cc] : 0;
        wp *= msum[cc] > 0 ? 1 - mean_t : 0;
        wn *= mean_t;
      }
      k.w_pos[cc] = wp;
      k.w_neg[cc] = wn;
    }
  } else if (s.kind == COMBO) {
    for (int64_t c = 0; c < L.C; ++c) {
      k.w_pos[static_cast<size_t>(c)] = s.alpha;
      k.w_neg[static_cast<size_t>(c)] = 1 - static_cast<LD>(s.alpha);
    }
  }

  // MEAN divisor.
  LD M_elements = 0, M_pixels = 0, M_weighted = 0;
  for (int64_t c = 0; c < L.C; ++c) {
    M_elements += msum[static_cast<size_t>(c)];
    M_weighted += k.omega[static_cast<size_t>(c)] * tsum[static_cast<size_t>(c)];
  }
  for (LD mm : k.m) M_pixels += mm;
  if (is_binary(s))
    k.divisor = M_elements;
  else if (s.kind == MARGINAL_CE)
    k.divisor = M_pixels;
  else
    k.divisor = M_weighted;  // CROSS_ENTROPY, softmax FOCAL

  // MARGINAL_CE: annotated classes per image, argmax per pixel, background factor.
  k.b.assign(np, 1);
  if (s.kind == MARGINAL_CE) {
    std::vector<int> annotated(static_cast<size_t>(L.N * L.C), 0);
    for (int64_t o = 0; o < L.outer; ++o)
      for (int64_t in = 0; in < L.inner; ++in) {
        if (k.m[static_cast<size_t>(L.pixel(o, in))] == 0) continue;
        for (int64_t c = 0; c < L.C; ++c)
          if (k.t[static_cast<size_t>(L.elem(o, c, in))] >= 0.5L)
            annotated[static_cast<size_t>((o / L.pre) * L.C + c)] = 1;
      }
    for (int64_t o = 0; o < L.outer; ++o)
      for (int64_t in = 0; in < L.inner; ++in) {
        int64_t best = 0;
        for (int64_t c = 1; c < L.C; ++c)
          if (x[static_cast<size_t>(L.elem(o, c, in))] >
              x[static_cast<size_t>(L.elem(o, best, in))])
            best = c;
        const bool missing = best >= 1 && !annotated[static_cast<size_t>((o / L.pre) * L.C + best)];
        k.b[static_cast<size_t>(L.pixel(o, in))] = missing ? 0 : 1;
      }
  }
  return k;
}

// The losses of pixel (o, in): one entry per class (the element loss for binary kinds; the class
// term of the sum over c otherwise). xs: the pixel's C inputs as dual numbers.
inline std::vector<D> pixel_losses(const Spec& s, const Ctx& k, int64_t o, int64_t in,
                                   const std::vector<D>& xs) {
  const Layout& L = k.L;
  const int64_t C = L.C;
  const size_t px = static_cast<size_t>(L.pixel(o, in));
  const D v(k.v[px]);
  std::vector<D> out(static_cast<size_t>(C), D(0));
  if (k.v[px] == 0) return out;  // ignored or zero weight: no loss, no gradient
  auto tgt = [&](int64_t c) { return k.t[static_cast<size_t>(L.elem(o, c, in))]; };

  if (is_binary(s)) {
    for (int64_t c = 0; c < C; ++c) {
      const size_t cc = static_cast<size_t>(c);
      const D x = xs[cc];
      D p, q, logp, logq;
      if (s.activation == ACT_SIGMOID) {
        logp = log_sigmoid(x);
        logq = log_sigmoid(-x);
        p = dexp(logp);
        q = dexp(logq);
      } else {
        p = clamp_prob(x);
        q = D(1) - p;
        logp = dlog(p);
        logq = dlog1p(-p);
      }
      const LD t = tgt(c);
      if (s.kind == BCE || s.kind == COMBO) {
        const LD eps = s.kind == BCE ? static_cast<LD>(s.label_smoothing) : 0.0L;
        const LD ts = t * (1 - eps) + eps / 2;
        out[cc] = -v * (D(k.w_pos[cc] * ts) * logp + D(k.w_neg[cc] * (1 - ts)) * logq);
      } else {  // binary FOCAL
        const D ce = -(D(t) * logp + D(1 - t) * logq);
        const D u = p * D(1 - t) + q * D(t);  // 1 − p_t
        const LD a = static_cast<LD>(s.alpha);
        const LD alpha_t = s.alpha < 0 ? 1.0L : a * t + (1 - a) * (1 - t);
        out[cc] = v * D(k.omega[cc] * alpha_t) * ce * dpow(u, static_cast<LD>(s.gamma));
      }
    }
    return out;
  }

  // Class-exclusive kinds: log p of every class.
  std::vector<D> logp(static_cast<size_t>(C)), p(static_cast<size_t>(C));
  if (s.activation == ACT_SOFTMAX) {
    LD mx = xs[0].v;
    for (int64_t c = 1; c < C; ++c) mx = std::max(mx, xs[static_cast<size_t>(c)].v);
    D z(0);
    for (int64_t c = 0; c < C; ++c) z += dexp(xs[static_cast<size_t>(c)] - D(mx));
    const D logz = dlog(z);
    for (int64_t c = 0; c < C; ++c) {
      logp[static_cast<size_t>(c)] = xs[static_cast<size_t>(c)] - D(mx) - logz;
      p[static_cast<size_t>(c)] = dexp(logp[static_cast<size_t>(c)]);
    }
  } else {
    for (int64_t c = 0; c < C; ++c) {
      p[static_cast<size_t>(c)] = clamp_prob(xs[static_cast<size_t>(c)]);
      logp[static_cast<size_t>(c)] = dlog(p[static_cast<size_t>(c)]);
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    const size_t cc = static_cast<size_t>(c);
    const LD t = tgt(c);
    if (s.kind == CROSS_ENTROPY) {
      const LD eps = static_cast<LD>(s.label_smoothing);
      const LD ts = t * (1 - eps) + eps / static_cast<LD>(C);
      out[cc] = -v * D(k.omega[cc] * ts) * logp[cc];
    } else if (s.kind == FOCAL) {  // softmax focal; ALPHA does not enter
      if (t == 0) continue;
      out[cc] = -v * D(k.omega[cc] * t) * dpow(D(1) - p[cc], static_cast<LD>(s.gamma)) * logp[cc];
    } else {  // MARGINAL_CE
      const LD tt = c == 0 ? k.b[px] * t : t;
      if (tt == 0) continue;
      out[cc] = -v * D(tt) * logp[cc];
    }
  }
  return out;
}

inline std::vector<D> pixel_inputs(const Layout& L, const std::vector<LD>& x, int64_t o,
                                   int64_t in) {
  std::vector<D> xs(static_cast<size_t>(L.C));
  for (int64_t c = 0; c < L.C; ++c)
    xs[static_cast<size_t>(c)] = D(x[static_cast<size_t>(L.elem(o, c, in))]);
  return xs;
}

// COMBO's Dice loss (MEAN, with COMBO's region options) through the region reference, on the
// dense target t and the weight v (so that the binary-mask reading of index targets is ours).
inline region_ref::Spec combo_dice_spec(const Spec& s, const Ctx& k) {
  region_ref::Spec r;
  r.kind = region_ref::DICE;
  r.shape = s.shape;
  r.class_axis = s.class_axis;
  r.input = s.input;
  r.index_target = false;
  r.dense_target.assign(k.t.begin(), k.t.end());
  r.pixel_weight.assign(k.v.begin(), k.v.end());
  r.activation = s.activation == ACT_SIGMOID ? region_ref::ACT_SIGMOID : region_ref::ACT_NONE;
  r.reduction = region_ref::RED_MEAN;
  r.smooth_nr = s.smooth_nr;
  r.smooth_dr = s.smooth_dr;
  r.squared = s.squared;
  r.batch = s.batch;
  r.include_background = s.include_background;
  r.class_weights = s.class_weights;
  r.skip_empty = s.skip_empty;
  r.average = s.average;
  r.grad_scale = 1.0;
  return r;
}

// Sum of the pixel losses (before the reduction's division).
inline LD raw_sum(const Spec& s, const Ctx& k, const std::vector<LD>& x) {
  LD total = 0;
  for (int64_t o = 0; o < k.L.outer; ++o)
    for (int64_t in = 0; in < k.L.inner; ++in)
      for (const D& d : pixel_losses(s, k, o, in, pixel_inputs(k.L, x, o, in))) total += d.v;
  return total;
}

// Factor from the raw sum to the objective (MEAN: 1/divisor, 0 when nothing is counted).
inline LD value_factor(const Spec& s, const Ctx& k) {
  if (s.kind == COMBO) return k.divisor > 0 ? static_cast<LD>(s.ce_ratio) / k.divisor : 0.0L;
  if (s.reduction == RED_MEAN) return k.divisor > 0 ? 1.0L / k.divisor : 0.0L;
  return 1.0L;
}

}  // namespace detail

// The objective (MEAN/SUM value, or the sum of the NONE outputs), not scaled, for an input given
// in long double; the constants (divisor, batch frequencies, argmax) are recomputed from x.
inline long double reference_objective(const Spec& s, const std::vector<long double>& x) {
  using namespace detail;
  const Ctx k = context(s, x);
  LD obj = value_factor(s, k) * raw_sum(s, k, x);
  if (s.kind == COMBO) {
    const LD dice = region_ref::reference_objective(combo_dice_spec(s, k), x);
    obj -= (1 - static_cast<LD>(s.ce_ratio)) * (1 - dice);
  }
  return obj;
}

inline Result reference(const Spec& s) {
  using namespace detail;
  const std::vector<LD> x(s.input.begin(), s.input.end());
  const Ctx k = context(s, x);
  const Layout& L = k.L;
  if (s.kind == COMBO && s.reduction != RED_MEAN)
    throw std::invalid_argument("elem_ref: COMBO is MEAN only");
  const LD factor = value_factor(s, k);
  const LD scale = static_cast<LD>(s.grad_scale);
  const bool binary = is_binary(s);

  Result res;
  res.divisor = static_cast<double>(k.divisor);
  res.grad.assign(x.size(), 0);
  std::vector<LD> none_values;
  if (s.reduction == RED_NONE) {
    if (binary) {
      res.value_shape = s.shape;
      none_values.assign(x.size(), 0);
    } else {
      for (size_t d = 0; d < s.shape.size(); ++d)
        if (static_cast<int64_t>(d) != L.axis) res.value_shape.push_back(s.shape[d]);
      none_values.assign(static_cast<size_t>(L.outer * L.inner), 0);
    }
  }
  LD total = 0;
  for (int64_t o = 0; o < L.outer; ++o)
    for (int64_t in = 0; in < L.inner; ++in) {
      const std::vector<D> xs0 = pixel_inputs(L, x, o, in);
      const std::vector<D> l0 = pixel_losses(s, k, o, in, xs0);
      LD pixel_total = 0;
      for (int64_t c = 0; c < L.C; ++c) {
        const LD lc = l0[static_cast<size_t>(c)].v;
        pixel_total += lc;
        if (s.reduction == RED_NONE && binary)
          none_values[static_cast<size_t>(L.elem(o, c, in))] = lc;
      }
      if (s.reduction == RED_NONE && !binary)
        none_values[static_cast<size_t>(L.pixel(o, in))] = pixel_total;
      total += pixel_total;
      // ∂(pixel loss)/∂x_j, one seed at a time.
      for (int64_t j = 0; j < L.C; ++j) {
        std::vector<D> xs = xs0;
        xs[static_cast<size_t>(j)].d = 1;
        LD dsum = 0;
        for (const D& d : pixel_losses(s, k, o, in, xs)) dsum += d.d;
        res.grad[static_cast<size_t>(L.elem(o, j, in))] = scale * factor * dsum;
      }
    }

  LD value = factor * total;
  if (s.kind == COMBO) {
    const region_ref::Result dice = region_ref::reference(combo_dice_spec(s, k));
    const LD r = static_cast<LD>(s.ce_ratio);
    value -= (1 - r) * (1 - static_cast<LD>(dice.values[0]));
    for (size_t e = 0; e < res.grad.size(); ++e)
      res.grad[e] += scale * (1 - r) * static_cast<LD>(dice.grad[e]);
  }
  if (s.reduction == RED_NONE) {
    for (LD vv : none_values) res.values.push_back(static_cast<double>(vv));
  } else {
    res.values = {static_cast<double>(value)};
  }
  return res;
}

// CULOSS_SUM: Σ weight_k · term_k over element-wise and region terms on the same tensors. Every
// term must be MEAN or SUM; each term's own grad_scale is used for its gradient.
struct SumTerm {
  double weight = 1.0;
  bool region = false;
  Spec elem;             // when !region
  region_ref::Spec reg;  // when region
};

inline Result sum_reference(const std::vector<SumTerm>& terms) {
  Result res;
  long double value = 0;
  std::vector<long double> grad;
  for (const SumTerm& t : terms) {
    Result r;
    if (t.region) {
      if (t.reg.reduction == region_ref::RED_NONE) throw std::invalid_argument("sum: NONE term");
      const region_ref::Result rr = region_ref::reference(t.reg);
      r.values = rr.values;
      r.grad = rr.grad;
    } else {
      if (t.elem.reduction == RED_NONE) throw std::invalid_argument("sum: NONE term");
      r = reference(t.elem);
    }
    value += static_cast<long double>(t.weight) * r.values[0];
    if (grad.empty()) grad.assign(r.grad.size(), 0);
    for (size_t e = 0; e < r.grad.size(); ++e)
      grad[e] += static_cast<long double>(t.weight) * r.grad[e];
  }
  res.values = {static_cast<double>(value)};
  for (long double g : grad) res.grad.push_back(static_cast<double>(g));
  return res;
}

}  // namespace elem_ref
